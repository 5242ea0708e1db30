package feed

import "fmt"

// Action is what an agent should do about a manifest.
type Action int

// Actions.
const (
	// Stay: nothing to do (up to date, not in the rollout yet, or refused).
	Stay Action = iota
	// Update to Plan.Release.
	Update
	// Revert: the running version was halted; return to the previous one.
	Revert
)

// Plan is the decision for one agent.
type Plan struct {
	Action   Action
	Release  *Release
	Artifact Artifact
	// Refused is set when a release was not taken for a reason the
	// operator should see (a downgrade, a version marked bad, no artifact
	// for this platform); it names the reason in a few words.
	Refused string
	// Why explains Stay and Revert in words for the log.
	Why string
}

// Agent describes the agent asking.
type Agent struct {
	ID       string
	Version  string // running version
	Platform string // "linux/amd64"
	// Bad reports versions marked bad on this host.
	Bad func(version string) bool
}

// Decide picks what the agent does with the manifest: the candidate is the
// newest release that is not halted.
func Decide(m *Manifest, a Agent) Plan {
	if r := m.Find(a.Version); r != nil && r.Halted {
		return Plan{Action: Revert, Release: r, Why: fmt.Sprintf("running version %s was halted", a.Version)}
	}
	r := m.Latest()
	if r == nil {
		return Plan{Why: "no release in the feed"}
	}
	if r.Version == a.Version {
		return Plan{Release: r, Why: "up to date"}
	}
	if a.Bad != nil && a.Bad(r.Version) {
		return Plan{Release: r, Refused: "marked bad on this host", Why: fmt.Sprintf("%s failed here before", r.Version)}
	}
	if CompareVersions(r.Version, a.Version) < 0 && !r.Rollback {
		return Plan{Release: r, Refused: "downgrade", Why: fmt.Sprintf("%s is older than the running %s and not marked as a rollback", r.Version, a.Version)}
	}
	if r.MinVersion != "" && CompareVersions(a.Version, r.MinVersion) < 0 {
		return Plan{Release: r, Refused: "below min_version", Why: fmt.Sprintf("%s needs at least %s to update from", r.Version, r.MinVersion)}
	}
	art, ok := r.Artifacts[a.Platform]
	if !ok {
		return Plan{Release: r, Refused: "no artifact for this platform", Why: fmt.Sprintf("%s has no artifact for %s", r.Version, a.Platform)}
	}
	if !Eligible(a.ID, r.Version, r.Percent) {
		return Plan{Release: r, Why: fmt.Sprintf("not in the first %d %% of the rollout of %s", r.Percent, r.Version)}
	}
	return Plan{Action: Update, Release: r, Artifact: art}
}
