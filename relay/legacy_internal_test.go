package relay

import (
	"bytes"
	"io"
	"testing"
)

// FuzzLegacyLines checks the legacy line splitter against bytes.SplitAfter:
// every line comes out whole, or is reported too long; nothing else.
func FuzzLegacyLines(f *testing.F) {
	f.Add(uint8(20), []byte("{\"a\":1}\n[1,2]\n\nno newline at end"))
	f.Add(uint8(0), []byte("0123456789abcdefghij\nshort\n"))
	f.Add(uint8(5), bytes.Repeat([]byte("x"), 200))
	f.Add(uint8(1), []byte(""))
	f.Fuzz(func(t *testing.T, maxByte uint8, data []byte) {
		max := 16 + int(maxByte)
		lr := newLineReader(bytes.NewReader(data), max)
		want := bytes.SplitAfter(data, []byte("\n"))
		for i, seg := range want {
			line, tooLong, err := lr.next()
			if len(seg) > max {
				if !tooLong {
					t.Fatalf("line %d of %d bytes (max %d): not reported too long", i, len(seg), max)
				}
			} else if tooLong || !bytes.Equal(line, seg) {
				t.Fatalf("line %d: got %q (too long %v), want %q", i, line, tooLong, seg)
			}
			last := i == len(want)-1
			if last != (err != nil) {
				t.Fatalf("line %d of %d: err %v", i, len(want), err)
			}
			if last && err != io.EOF {
				t.Fatalf("final error %v, want EOF", err)
			}
		}
	})
}
