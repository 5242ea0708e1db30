package discovery

import (
	"strings"
	"testing"
)

func TestMetaRoundTripAndSize(t *testing.T) {
	// The largest agent metadata a real deployment publishes must fit
	// memberlist's 512-byte limit.
	long := Meta{Role: RoleAgent, Version: "v10.20.30-rc.4+" + strings.Repeat("g", 12),
		Relay: strings.Repeat("relay-host-name.example", 3) + ":8433", Backlog: 1 << 40, BacklogBytes: 1 << 50,
		Update: "trial", Rollback: "v10.20.29-rc.3 no_ack"}
	b, err := long.encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if got := DecodeMeta(b); got != long {
		t.Errorf("round trip: got %+v, want %+v", got, long)
	}
}

func TestMetaUrgent(t *testing.T) {
	base := Meta{Role: RoleAgent, Version: "1.0.0", Relay: "r1:8433", Backlog: 10, Update: "installed"}
	for _, tc := range []struct {
		name   string
		change func(*Meta)
		want   bool
	}{
		{"nothing", func(*Meta) {}, false},
		{"backlog grows a little", func(m *Meta) { m.Backlog = 12 }, false},
		{"relay in use", func(m *Meta) { m.Relay = "r2:8433" }, true},
		{"version (an update landed)", func(m *Meta) { m.Version = "1.1.0" }, true},
		{"update state", func(m *Meta) { m.Update = "trial" }, true},
		{"a rollback", func(m *Meta) { m.Rollback = "1.1.0 exited" }, true},
	} {
		n := base
		tc.change(&n)
		if got := base.Urgent(n); got != tc.want {
			t.Errorf("%s: Urgent = %v, want %v", tc.name, got, tc.want)
		}
	}
}
