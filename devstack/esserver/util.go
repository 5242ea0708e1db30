package esserver

import (
	"bytes"
	"errors"
	"io"
)

var errNotObject = errors.New("Malformed content, must start with an object")

var errTrailing = errors.New("Unexpected character: trailing content after the JSON value")

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
