package reaper

import (
	"context"
	"os"
	"testing"
)

// BenchmarkSpawnReap measures one spawn/reap cycle of /bin/true through the
// reaper: start under the lock, exit, SIGCHLD, drain, dispatch to the owner.
// go test -run - -bench SpawnReap -benchtime 10000x ./reaper
func BenchmarkSpawnReap(b *testing.B) {
	r := New(quiet())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	done := make(chan Status, 1)
	owner := func(s Status) { done <- s }
	start := func() (int, error) {
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			return 0, err
		}
		pid := p.Pid
		return pid, p.Release()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Spawn(start, owner); err != nil {
			b.Fatal(err)
		}
		if s := <-done; s.Code() != 0 {
			b.Fatalf("true exited %d", s.Code())
		}
	}
}

// BenchmarkStartWait is the baseline: the same child started and waited for
// by os.Process.Wait (a pidfd), with no reaper. Only a benchmark may do this.
func BenchmarkStartWait(b *testing.B) {
	for i := 0; i < b.N; i++ {
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			b.Fatal(err)
		}
		if st, err := p.Wait(); err != nil || !st.Success() {
			b.Fatalf("true: %v %v", st, err)
		}
	}
}
