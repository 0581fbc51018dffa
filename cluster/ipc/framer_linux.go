package ipc

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// framer cuts the byte stream into lines and gives each fd to the line that
// owns it. It is pure bookkeeping over what recvmsg returned, so tests and
// fuzzing drive it without a socket.
//
// The fd rule (docs/protocol.md §3.3). The sender attaches an fd to the sendmsg
// that carries the first byte of its NODE_HANDLE line, and the kernel ends a
// unix stream read right after the segment that carried fds (it may glue the
// tail of earlier segments in front of it). So an fd arrives in the read that
// holds the start of its line. Like node's channel.onread, the framer gives
// an fd to the first NODE_HANDLE line completed after it arrived. Unlike
// node, it does not wait for ever: once a line that started in a later read
// than the fd completes, or a read ends with no line in progress that started
// in or before the fd's read, no line can own the fd any more, and that is a
// protocol error (KindOrphanFD). Two fds in one read (or a truncated control
// message) is KindExtraFD. Unlike node, an fd that arrives while an earlier
// one is still unclaimed does not replace it (node keeps the newer, leaks the
// older and hands a line the wrong fd: the 64 KiB trap); the fds wait in
// order, each for a line that started by its read.
type framer struct {
	maxLine int

	reads       uint64 // reads seen so far; the current read's number
	partial     []byte // the incomplete last line
	partialRead uint64 // the read in which partial began (when len(partial) > 0)

	fds []heldFD // unclaimed fds, oldest first; at most one per read
}

type heldFD struct {
	fd   int
	read uint64 // the read it arrived in
}

func newFramer(maxLine int) *framer {
	return &framer{maxLine: maxLine}
}

// feed takes one read: its bytes, the fds that came with it, and whether the
// kernel truncated the control data (MSG_CTRUNC, fds lost). It calls emit for
// every complete line in order; a NODE_HANDLE line's Message carries the fd it
// claimed in FD (or -1), and emit owns that fd from then on. On error the
// framer has closed every fd it held; emit's error is returned as is.
func (f *framer) feed(data []byte, fds []int, truncated bool, emit func(Message) error) error {
	f.reads++
	if truncated || len(fds) > 1 {
		closeFDs(fds)
		f.closeFD()
		return protoErr(KindExtraFD, nil, nil, "%d fds in one read (truncated control data: %v); node sends one per message", len(fds), truncated)
	}
	if len(fds) == 1 {
		f.fds = append(f.fds, heldFD{fds[0], f.reads})
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(f.partial) == 0 {
				f.partialRead = f.reads
			}
			if len(f.partial)+len(data) > f.maxLine {
				return f.fail(protoErr(KindLineTooLong, f.partial, nil, "more than %d bytes without a newline", f.maxLine))
			}
			f.partial = append(f.partial, data...)
			break
		}
		line, start := data[:i], f.reads
		if len(f.partial) > 0 {
			start = f.partialRead
			if len(f.partial)+i > f.maxLine {
				return f.fail(protoErr(KindLineTooLong, f.partial, nil, "line of %d bytes, limit %d", len(f.partial)+i, f.maxLine))
			}
			f.partial = append(f.partial, line...)
			line = f.partial
		} else if i > f.maxLine {
			return f.fail(protoErr(KindLineTooLong, line, nil, "line of %d bytes, limit %d", i, f.maxLine))
		}
		data = data[i+1:]
		err := f.line(line, start, emit)
		f.partial = f.partial[:0]
		if err != nil {
			return err
		}
	}
	if cap(f.partial) > 1<<20 && len(f.partial) == 0 {
		f.partial = nil // don't pin a big buffer after a big message
	}
	// Only the line in progress can still claim an fd: one fd, and only if
	// that line started by the fd's read.
	if len(f.fds) > 1 || len(f.fds) == 1 && (len(f.partial) == 0 || f.partialRead > f.fds[0].read) {
		return f.fail(protoErr(KindOrphanFD, nil, nil, "read %d brought an fd but no NODE_HANDLE line that started by then", f.fds[0].read))
	}
	return nil
}

// line handles one complete line that started in read start.
func (f *framer) line(line []byte, start uint64, emit func(Message) error) error {
	if len(line) == 0 {
		return f.fail(protoErr(KindEmptyLine, nil, nil, ""))
	}
	m, err := decode(line)
	if err != nil {
		return f.fail(protoErr(KindInvalidJSON, line, err, ""))
	}
	if len(f.fds) > 0 && start > f.fds[0].read {
		return f.fail(protoErr(KindOrphanFD, line, nil, "fd from read %d still unclaimed when a line from read %d ended", f.fds[0].read, start))
	}
	if m.Cmd == CmdHandle && len(f.fds) > 0 {
		m.FD = f.fds[0].fd
		f.fds = f.fds[1:]
	}
	return emit(m)
}

func (f *framer) fail(err error) error {
	f.closeFD()
	return err
}

// closeFD closes every unclaimed fd.
func (f *framer) closeFD() {
	for _, h := range f.fds {
		unix.Close(h.fd)
	}
	f.fds = nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
