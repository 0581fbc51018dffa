//go:build linux

package worker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herd-sh/herd/cluster/ipc"
)

// buildGoServer builds examples/goserver, so that the example cannot rot.
func buildGoServer(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "goserver")
	cmd := exec.Command(gobin, "build", "-o", bin, "./examples/goserver")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/goserver: %v\n%s", err, out)
	}
	return bin
}

// runWorker starts bin as a cluster worker with the channel at fd 3, as
// herd spawns one, and returns herd's end and the process.
func runWorker(t *testing.T, bin string, env ...string) (*primary, *exec.Cmd) {
	t.Helper()
	ch, child, err := ipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(child), "channel") // blocking: exec's Fd leaves it alone
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append(env, "NODE_CHANNEL_FD=3", "NODE_UNIQUE_ID=5", "NODE_CHANNEL_SERIALIZATION_MODE=json")...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close() // or herd never sees EOF
	t.Cleanup(func() {
		ch.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	p := &primary{t: t, ch: ch, in: make(chan ipc.Message, 64), runErr: make(chan error, 1)}
	go func() { p.runErr <- ch.Run(context.Background(), func(m ipc.Message) { p.in <- m }) }()
	return p, cmd
}

func waitExit(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("goserver: %v, want exit 0", err)
		}
	case <-time.After(timeout):
		t.Fatal("goserver did not exit")
	}
}

// TestGoServer runs examples/goserver as a worker under a scripted herd
// (rr and shared), serves a request, and stops it with disconnect; then
// alone, stopped by SIGTERM.
func TestGoServer(t *testing.T) {
	bin := buildGoServer(t)
	const query = `{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":8080,"addressType":4,"backlog":0,"seq":1}`
	const listening = `{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":null,"port":8080,"addressType":4,"backlog":0,"seq":2}`
	const key = "null:8080:4:undefined:0"
	request := "GET /hello HTTP/1.1\r\nHost: herd\r\nConnection: close\r\n\r\n"

	t.Run("rr", func(t *testing.T) {
		p, cmd := runWorker(t, bin, "PORT=8080")
		p.expect(`{"cmd":"NODE_CLUSTER","act":"online","seq":0}`)
		p.expect(query)
		p.reply(1, map[string]any{"errno": nil, "key": key, "data": nil,
			"sockname": map[string]any{"address": "::", "family": "IPv6", "port": 8080}})
		p.expect(listening)

		client, fd, release := tcpConn(t)
		ack := p.newconn(key, fd)
		p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","ack":%d,"accepted":true,"seq":3}`, ack))
		release()
		client.SetDeadline(time.Now().Add(timeout))
		io.WriteString(client, request)
		body, _ := io.ReadAll(client)
		if want := fmt.Sprintf("pid %d worker 5 url /hello", cmd.Process.Pid); !strings.Contains(string(body), want) {
			t.Errorf("response %q, want %q", body, want)
		}

		p.send(actDisconnect, nil)
		p.expect(`{"cmd":"NODE_CLUSTER","act":"close","key":"` + key + `","seq":4}`)
		p.expectEOF()
		waitExit(t, cmd)
	})

	t.Run("shared", func(t *testing.T) {
		p, cmd := runWorker(t, bin, "PORT=0")
		p.expect(`{"cmd":"NODE_CLUSTER","act":"online","seq":0}`)
		p.expect(`{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":0,"addressType":4,"backlog":0,"seq":1}`)
		fd, port := tcpSocket(t, false)
		p.handle(ipc.Reply(1, p.nextSeq(), map[string]any{"errno": 0, "key": "null:0:4:undefined:0", "data": nil}), fd)
		p.expect(fmt.Sprintf(`{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":null,"port":%d,"addressType":4,"backlog":0,"seq":2}`, port))

		client, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		client.SetDeadline(time.Now().Add(timeout))
		io.WriteString(client, request)
		body, _ := io.ReadAll(client)
		if want := fmt.Sprintf("pid %d worker 5 url /hello", cmd.Process.Pid); !strings.Contains(string(body), want) {
			t.Errorf("response %q, want %q", body, want)
		}
		if !nonblocking(t, fd) {
			t.Error("herd's copy of the shared socket became blocking")
		}

		p.send(actDisconnect, nil)
		p.expect(`{"cmd":"NODE_CLUSTER","act":"close","key":"null:0:4:undefined:0","seq":3}`)
		p.expectEOF()
		waitExit(t, cmd)
	})

	t.Run("alone", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), fmt.Sprint("PORT=", port))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		url := fmt.Sprintf("http://127.0.0.1:%d/alone", port)
		var resp *http.Response
		for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
			if resp, err = http.Get(url); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "worker 0 url /alone") {
			t.Errorf("response %q", body)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		waitExit(t, cmd)
	})
}
