package cluster

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	initproc "github.com/herd-sh/herd/init"

	"github.com/herd-sh/herd/cluster/listen"
	"github.com/herd-sh/herd/reaper"
	"golang.org/x/sys/unix"
)

// start runs a new worker in sl, as its replacement when next is set. A
// command that cannot be executed ends the slot and every slot not yet
// started: the same command would fail again.
func (s *Supervisor) start(sl *slot, next bool) *worker {
	s.nextID++
	w := &worker{id: s.nextID, slot: sl, state: StateStarting, launch: -1}
	path, argv, attr, closeAfter, err := s.prepare(w)
	defer func() {
		for _, fd := range closeAfter {
			unix.Close(fd)
		}
	}()
	if err != nil {
		msg := "worker start failed"
		if errors.Is(err, errNoChannel) {
			msg += ": no channel"
		}
		s.log.Error(msg, "id", w.id, "index", sl.index, "err", errors.Unwrap(err))
		return nil
	}
	pid, err := s.procs.start(path, argv, attr, func(st reaper.Status) { s.exits <- exitEvent{w, st} })
	if err != nil {
		if w.launch >= 0 {
			unix.Close(w.launch)
		}
		if w.ch != nil {
			_ = w.ch.Close()
		}
		if path == s.cfg.Path {
			err = explainStart(path, s.cfg.Dir, err)
		}
		s.startFailed(sl, w, next, err)
		return nil
	}
	s.register(sl, w, next, pid)
	return w
}

// Why prepare failed.
var (
	errNoChannel  = errors.New("no channel")
	errNoLauncher = errors.New("no status pipe for the launcher")
)

// prepare makes what w's process starts with: the program (herd's
// launcher when the worker gets more than fds 0-2, or when the signal
// dispositions must be reset), its argv, and its attributes. closeAfter
// lists herd's copies of fds to close once the process has started (or
// failed to).
func (s *Supervisor) prepare(w *worker) (path string, argv []string, attr *syscall.ProcAttr, closeAfter []int, err error) {
	sl := w.slot
	files := []uintptr{0, 1, 2}
	for _, l := range s.sockets(sl) {
		files = append(files, uintptr(l.FD))
	}
	path, argv = s.cfg.Path, s.cfg.Args
	env := s.workerEnv(w.id, sl)
	if s.cfg.Channel {
		child, err := s.openChannel(w)
		if err != nil {
			return "", nil, nil, nil, fmt.Errorf("%w: %w", errNoChannel, err)
		}
		closeAfter = append(closeAfter, child)
		env = append(env, "NODE_CHANNEL_FD="+strconv.Itoa(len(files)), "NODE_UNIQUE_ID="+strconv.Itoa(w.id),
			"NODE_CHANNEL_SERIALIZATION_MODE=json")
		files = append(files, uintptr(child))
	}
	if len(files) > 3 || s.cfg.ResetSignals {
		// Through the launcher, with a pipe on which it reports a failed
		// execve: its exit alone would look like the worker's own 127.
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			if w.ch != nil {
				_ = w.ch.Close()
			}
			return "", nil, nil, closeAfter, fmt.Errorf("%w: %w", errNoLauncher, err)
		}
		closeAfter = append(closeAfter, p[1])
		w.launch = p[0]
		env = append(env, launchStatusVar+"="+strconv.Itoa(len(files)))
		files = append(files, uintptr(p[1]))
		path = s.cfg.Launcher
		argv = append([]string{s.cfg.Launcher, LaunchArg, s.cfg.Path}, s.cfg.Args...)
	}
	attr = &syscall.ProcAttr{
		Dir:   s.cfg.Dir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: s.cfg.Credential},
	}
	if s.cfg.Foreground && sl.index == 0 {
		attr.Sys.Foreground = true
		attr.Sys.Ctty = 0
	}
	return path, argv, attr, closeAfter, nil
}

// startFailed applies a failed start of w in sl: a passing error (no
// memory, process limit) is retried after the backoff; a command that
// cannot run ends the slot, and every slot not started yet.
func (s *Supervisor) startFailed(sl *slot, w *worker, next bool, err error) {
	code, permanent := StartErrorCode(err)
	if !permanent && !next {
		s.log.Error("worker start failed", "id", w.id, "index", sl.index, "err", err)
		var delay time.Duration
		delay, sl.unstable = s.cfg.Backoff.Next(sl.unstable, 0)
		s.schedule(sl, w.id, delay)
		return
	}
	s.log.Error("cannot start command", "path", s.cfg.Path, "err", unwrapStart(err), "code", code)
	if next {
		return
	}
	s.fail(code)
	for _, other := range s.slots {
		if other.w == nil && other.timer == nil {
			other.finished = true
		}
	}
	sl.finished = true
	if s.live() == 0 && s.pending == 0 {
		s.beginStop(0, "command cannot start")
	}
}

// register records w, started as pid in sl, and has its channel read.
func (s *Supervisor) register(sl *slot, w *worker, next bool, pid int) {
	now := time.Now()
	w.pid, w.start, w.beat, w.state = pid, now, now, StateOnline
	s.workers[pid] = w
	if next {
		sl.next = w
	} else {
		sl.w = w
	}
	s.started++
	s.log.Info("worker started", "id", w.id, "index", sl.index, "pid", pid)
	if w.ch != nil {
		if err := s.watchChannel(w); err != nil {
			s.log.Error("cannot read the worker's channel", "id", w.id, "err", err)
			s.detachChannel(w, false)
		} else if w.requests = s.requestLimit(); w.requests > 0 {
			s.hand.Limit(w.hw, w.requests, s.nudgeLoop)
		}
	}
	s.afterStart(w)
}

// sockets lists what a worker of sl receives as fds 3 and up.
func (s *Supervisor) sockets(sl *slot) []*listen.Listener {
	if s.cfg.Policy == PolicyReuseport {
		return sl.sockets
	}
	if s.cfg.Policy == PolicyNone || s.cfg.Policy == PolicyAuto {
		return s.cfg.Listeners
	}
	return nil
}

func (s *Supervisor) live() int { return len(s.workers) }

// StartErrorCode maps an error from starting a process to the exit code a
// shell would give, and says whether trying again is pointless: 127 when the
// program does not exist, 126 when it cannot be executed (a script whose
// interpreter is missing included). Other errors (no memory, process limit)
// are passing and get code 1.
func StartErrorCode(err error) (code int, permanent bool) {
	var bad *badInterpreterError
	if errors.As(err, &bad) {
		return initproc.ExitNotExecutable, true
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		if errors.Is(err, os.ErrNotExist) {
			return initproc.ExitNotFound, true
		}
		if errors.Is(err, os.ErrPermission) {
			return initproc.ExitNotExecutable, true
		}
		return 1, false
	}
	switch errno {
	case unix.ENOENT, unix.ENOTDIR, unix.ELOOP, unix.ENAMETOOLONG:
		return initproc.ExitNotFound, true
	case unix.EACCES, unix.EPERM, unix.ENOEXEC, unix.EISDIR, unix.ELIBBAD, unix.EINVAL:
		return initproc.ExitNotExecutable, true
	}
	return 1, false
}

func unwrapStart(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// nudgeLoop tells the loop, without waiting, that a worker has taken its
// share of connections.
func (s *Supervisor) nudgeLoop() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}
