package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRunMixed runs the generator against a server whose slow answer
// waits -mixed-ms, over new connections and over kept ones.
func TestRunMixed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/work" {
			time.Sleep(20 * time.Millisecond)
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, keepAlive := range []bool{false, true} {
		mc := mixedConfig{on: true, duration: 300 * time.Millisecond, conns: 4, slowPct: 20, slowMs: 20, keepAlive: keepAlive}
		st := runMixed(context.Background(), port, mc)
		if st.errs > 0 || st.fast == 0 || st.slow == 0 {
			t.Fatalf("keep-alive %v: %d fast, %d slow, %d errors (%s)", keepAlive, st.fast, st.slow, st.errs, st.firstErr)
		}
		if st.slowP50 < 20*time.Millisecond || st.fastP50 >= st.slowP50 || st.fastMax < st.fastP99 || st.fastP99 < st.fastP50 {
			t.Errorf("keep-alive %v: fast p50 %s p99 %s max %s, slow p50 %s", keepAlive, st.fastP50, st.fastP99, st.fastMax, st.slowP50)
		}
		t.Logf("keep-alive %v: %s", keepAlive, st.describe())
	}
}
