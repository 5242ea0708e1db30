package buffer

import (
	"slices"
	"time"
)

// Wall-clock steps. Every record carries the wall time of its append; the
// queue compares it with the wall clock to decide when stored batches have
// become a backlog (live_after) and when they are too old (max_age). An edge
// host without NTP steps its clock by hours: stepped back, a backlog looks
// younger than live_after (live data would wait behind it); stepped forward,
// every batch looks an hour old (max_age would drop it). So the queue
// watches the wall clock against the monotonic one: when they part by more
// than clockStepMin, it records the step and the last sequence appended
// before it, and from then on reads the append times of those batches
// shifted by the step, in the clock's new frame. Ages stay true. Steps are
// remembered in memory only: a step while the agent is stopped is not seen.

const (
	clockStepMin  = 2 * time.Second
	maxClockSteps = 64
)

type clockStep struct {
	upTo  uint64 // batches with seq <= upTo were stamped before the step
	delta int64  // ns to add to their append times
}

// wall is the wall clock (Config.Clock, a seam for tests).
func (q *Queue) wall() time.Time {
	if q.cfg.Clock != nil {
		return q.cfg.Clock()
	}
	return time.Now()
}

// observeClock notes a wall-clock step since the last call and returns the
// wall time (ns) it read: stamp the batches after lastSeq with it, so a step
// can never fall between the check and the stamp. lastSeq is the last
// sequence stamped before now. Commit loop only; takes q.mu.
func (q *Queue) observeClock(lastSeq uint64) int64 {
	wall := q.wall().UnixNano()
	mono := time.Now()
	if q.clockRefMono.IsZero() {
		q.clockRefWall, q.clockRefMono = wall, mono
		return wall
	}
	drift := (wall - q.clockRefWall) - int64(mono.Sub(q.clockRefMono))
	q.clockRefWall, q.clockRefMono = wall, mono
	if drift > -int64(clockStepMin) && drift < int64(clockStepMin) {
		return wall
	}
	q.mu.Lock()
	q.clockSteps = append(q.clockSteps, clockStep{upTo: lastSeq, delta: drift})
	if len(q.clockSteps) > maxClockSteps {
		q.clockSteps = q.clockSteps[1:]
	}
	q.stats.ClockSteps++
	q.mu.Unlock()
	if q.m != nil {
		q.m.clockSteps.Inc()
	}
	q.logger.Warn("buffer: the wall clock stepped; append times of stored batches are read in the new frame",
		"step", time.Duration(drift).Round(time.Millisecond), "before_seq", lastSeq+1)
	return wall
}

// appendedAt is batch seq's append time (stamp, ns) in the current clock's
// frame. Call with q.mu held.
func (q *Queue) appendedAt(seq uint64, stamp int64) int64 {
	return inFrame(q.clockSteps, seq, stamp)
}

// inFrame shifts a stamp of batch seq by every step taken after it.
func inFrame(steps []clockStep, seq uint64, stamp int64) int64 {
	for _, st := range steps {
		if seq <= st.upTo {
			stamp += st.delta
		}
	}
	return stamp
}

// clockStepsNow is a copy of the steps, for use without q.mu.
func (q *Queue) clockStepsNow() []clockStep {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.clockSteps)
}
