package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// bareServerEnv, when set in this program's environment, makes it the bare handler's process: it
// serves on a loopback port, prints the address, and stops when its standard input closes.
const bareServerEnv = "LOADGEN_BARE_SERVER"

// bareHandler does the least a webhook endpoint can: read the body, answer 403.
var bareHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusForbidden)
})

// serveBare is the child's side of startBare.
func serveBare() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: bareHandler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = srv.Close()
	}()
	fmt.Println(ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startBare runs the bare handler in a process of its own — as the service runs in its own, so that
// neither side of the comparison shares a Go runtime with the load — and returns its address and a
// func that stops it, and its process id (0 when inProcess has it serve from this process instead).
func startBare(ctx context.Context, inProcess bool) (string, func(), int, error) {
	if inProcess {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, 0, err
		}
		srv := &http.Server{Handler: bareHandler, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		return ln.Addr().String(), func() { _ = srv.Close() }, 0, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, 0, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), bareServerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, 0, err
	}
	stop := func() {
		stdin.Close()
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr := strings.TrimSpace(line)
	if err != nil || loopbackOnly("http://"+addr) != nil {
		stop()
		return "", nil, 0, fmt.Errorf("bare handler process: %q %v", addr, err)
	}
	return addr, stop, cmd.Process.Pid, nil
}
