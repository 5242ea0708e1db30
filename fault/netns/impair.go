package netns

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// Impairments short of a pulled cable. The kernels here lack netem, so:
//
//   - SetLoss drops a random share of the frames to and from a node with an
//     nftables bridge rule in the hub (numgen random), both directions;
//   - SetRate shapes the node's cable with a token bucket (tc tbf) on both
//     ends of its veth: the hub end limits what the node receives, the
//     node's eth0 what it sends;
//   - latency and jitter come from a DelayProxy (delay.go).

func (nd *Node) lossTable() string { return "flo_" + nd.hubIf }

// SetLoss makes the hub drop pct percent of the frames from and to the node
// at random, each direction drawn independently. 0 removes the rule.
func (nd *Node) SetLoss(pct int) error {
	if pct < 0 || pct > 100 {
		return fmt.Errorf("netns: loss %d%%, want 0..100", pct)
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	// Replace any earlier rule: delete (ignoring "no such table"), then add.
	_ = run("ip", "netns", "exec", nd.net.hub, "nft", "delete", "table", "bridge", nd.lossTable())
	if pct == 0 {
		return nil
	}
	rules := fmt.Sprintf(`table bridge %s {
	chain loss {
		type filter hook forward priority 0; policy accept;
		iifname "%s" numgen random mod 100 < %d drop
		oifname "%s" numgen random mod 100 < %d drop
	}
}
`, nd.lossTable(), nd.hubIf, pct, nd.hubIf, pct)
	cmd := exec.Command("ip", "netns", "exec", nd.net.hub, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netns: nft loss %s: %v: %s", nd.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// SetRate limits the node's cable to upKbit (node → hub) and downKbit
// (hub → node) kilobits per second with a token bucket; 0 removes the limit
// in that direction. Calling it again changes the rate in place.
func (nd *Node) SetRate(upKbit, downKbit int) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if err := shape(nd.NS, "eth0", upKbit); err != nil {
		return fmt.Errorf("netns: rate %s up: %w", nd.Name, err)
	}
	if err := shape(nd.net.hub, nd.hubIf, downKbit); err != nil {
		return fmt.Errorf("netns: rate %s down: %w", nd.Name, err)
	}
	return nil
}

func shape(ns, dev string, kbit int) error {
	if kbit <= 0 {
		err := run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root")
		if err != nil && (strings.Contains(err.Error(), "No such file") || strings.Contains(err.Error(), "Cannot delete qdisc with handle of zero")) {
			return nil
		}
		return err
	}
	// A burst of a few full frames keeps small rates from stalling on one
	// 1500-byte frame; 400 ms of queue before the bucket drops.
	burst := max(kbit/8, 16) // an eighth of a second of the rate, at least 16 kbit (2 KiB)
	return run("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", fmt.Sprintf("%dkbit", kbit), "burst", fmt.Sprintf("%dkbit", burst), "latency", "400ms")
}
