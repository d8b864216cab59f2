package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/store"
)

// benchReport is what kep bench measured.
type benchReport struct {
	Messages     int     `json:"messages"`
	Size         int     `json:"size_bytes"`
	Sessions     int     `json:"sessions"`
	Recipients   int     `json:"recipients_per_message"`
	Accepted     int64   `json:"accepted"`
	Refused      int64   `json:"refused"`
	Errors       int64   `json:"errors"`
	SubmitSecs   float64 `json:"submit_seconds"`
	AcceptedPerS float64 `json:"accepted_per_second"`
	Delivered    int64   `json:"delivered"`
	DeliverSecs  float64 `json:"deliver_seconds"`
	DeliveredPS  float64 `json:"delivered_per_second"`
	P50ms        float64 `json:"latency_p50_ms"`
	P99ms        float64 `json:"latency_p99_ms"`
	PeakRSSMB    float64 `json:"server_peak_rss_mb"`
}

func cmdBench(ctx context.Context, args []string) error {
	f := newFlags("bench", "[--demo DIR] [-n MESSAGES] [-c SESSIONS] [-s SIZE]")
	demoDir := f.String("demo", "", "a running 'kep demo' world to load (default: start a fresh one in a temporary directory)")
	n := f.Int("n", 20000, "messages to submit")
	c := f.Int("c", 32, "concurrent SMTP sessions")
	size := f.Int("s", 10240, "size of each message's signed text, in bytes")
	pool := f.Int("pool", 64, "distinct pre-signed messages (outer headers vary per send)")
	asJSON := f.Bool("json", false, "print the report as JSON")
	withAPI := f.Bool("api", false, "also submit -n messages through the REST API in bulk calls (bench_api.go)")
	apiBatch := f.Int("api-batch", 1000, "with --api: messages per bulk call")
	apiC := f.Int("api-c", 2, "with --api: bulk calls at a time")
	if err := f.parse(args); err != nil {
		return err
	}
	dir := *demoDir
	var stop func()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "kep-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "world")
		if stop, err = startDemoProcess(ctx, dir); err != nil {
			return err
		}
		defer stop()
	}
	info, err := demo.Load(dir)
	if err != nil {
		return err
	}
	ayse, _ := info.Account("ayse")
	mehmet, _ := info.Account("mehmet")
	if ayse == nil || mehmet == nil {
		return errors.New("the demo world has no ayse and mehmet accounts")
	}
	is, err := pki.LoadIssued(ayse.Certificate, ayse.PrivateKey)
	if err != nil {
		return err
	}
	signer := &client.Signer{Key: is.Key, Cert: is.Cert, Chain: is.Chain}
	// Pre-sign a pool: the signature covers the inner entity; the outer
	// header (Message-ID, Date) varies per send without re-signing.
	type signed struct{ header, rest []byte }
	msgs := make([]signed, *pool)
	text := make([]byte, *size)
	for i := range msgs {
		rand.Read(text)
		body := base64Lines(text, *size)
		m := &client.Message{From: ayse.Address, To: []string{mehmet.Address}, Subject: fmt.Sprintf("bench %d", i), Body: string(body)}
		raw, err := m.Sign(signer)
		if err != nil {
			return err
		}
		i1 := bytes.Index(raw, []byte("Message-ID: "))
		i2 := i1 + bytes.Index(raw[i1:], []byte("\r\n")) + 2
		msgs[i] = signed{header: append([]byte(nil), raw[:i1]...), rest: append([]byte(nil), raw[i2:]...)}
	}
	roots := x509.NewCertPool()
	cas, err := pki.LoadCertsPEM(info.Providers[0].CA)
	if err != nil {
		return err
	}
	roots.AddCert(cas[0])
	sub := client.Submission{Addr: info.Providers[0].Endpoints.Submission, Username: ayse.Username, Password: ayse.Password,
		TLS: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	cfg, err := config.Load(info.Providers[0].Config)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	var startSeq int64
	db.Q().QueryRow(ctx, `SELECT COALESCE(MAX(seq) + 1, 0) FROM evidence`).Scan(&startSeq)

	rep := &benchReport{Messages: *n, Size: *size, Sessions: *c, Recipients: 1}
	var start time.Time
	message := func(i int64) []byte {
		m := msgs[int(i%int64(len(msgs)))]
		raw := make([]byte, 0, len(m.header)+len(m.rest)+64)
		raw = append(raw, m.header...)
		raw = fmt.Appendf(raw, "Message-ID: <bench-%d-%d@hs01.kep.tr>\r\n", start.UnixNano(), i)
		return append(raw, m.rest...)
	}
	var next atomic.Int64
	lat := make([][]time.Duration, *c)
	var wg sync.WaitGroup
	start = time.Now()
	for s := 0; s < *c; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			conn, err := client.Dial(sub)
			if err != nil {
				atomic.AddInt64(&rep.Errors, 1)
				fmt.Fprintln(os.Stderr, "kep bench:", err)
				return
			}
			defer conn.Close()
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(*n) {
					return
				}
				raw := message(i)
				t0 := time.Now()
				res, err := conn.Send(ayse.Address, []string{mehmet.Address}, raw)
				lat[s] = append(lat[s], time.Since(t0))
				switch {
				case err != nil:
					atomic.AddInt64(&rep.Errors, 1)
					return
				case res.Accepted:
					atomic.AddInt64(&rep.Accepted, 1)
				default:
					if atomic.AddInt64(&rep.Refused, 1) == 1 {
						fmt.Fprintln(os.Stderr, "kep bench: refused:", res.Reply)
					}
				}
			}
		}(s)
	}
	wg.Wait()
	rep.SubmitSecs = time.Since(start).Seconds()
	rep.AcceptedPerS = float64(rep.Accepted) / rep.SubmitSecs
	// Wait for every accepted message's delivery evidence (40).
	deadline := time.Now().Add(5 * time.Minute)
	for {
		db.Q().QueryRow(ctx, `SELECT COUNT(*) FROM evidence WHERE seq >= ? AND code IN (40, 41)`, startSeq).Scan(&rep.Delivered)
		if rep.Delivered >= rep.Accepted || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.DeliverSecs = time.Since(start).Seconds()
	rep.DeliveredPS = float64(rep.Delivered) / rep.DeliverSecs
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		rep.P50ms = float64(all[len(all)/2].Microseconds()) / 1000
		rep.P99ms = float64(all[len(all)*99/100].Microseconds()) / 1000
	}
	if info.PID > 0 {
		rep.PeakRSSMB = peakRSS(info.PID)
	}
	var apiRep *apiBenchReport
	if *withAPI {
		if apiRep, err = benchAPI(ctx, info, message, *n, *apiBatch, *apiC); err != nil {
			return err
		}
	}
	if *asJSON {
		if apiRep != nil {
			return printJSON(map[string]any{"smtp": rep, "api": apiRep})
		}
		return printJSON(rep)
	}
	if apiRep != nil {
		defer printAPIBench(apiRep)
	}
	fmt.Printf("kep bench: %d signed messages of %d B, %d SMTP sessions, 1 recipient each\n", rep.Messages, rep.Size, rep.Sessions)
	fmt.Printf("  accepted   %7.0f/s  (%d in %.1f s; %d refused, %d errors)\n", rep.AcceptedPerS, rep.Accepted, rep.SubmitSecs, rep.Refused, rep.Errors)
	fmt.Printf("  delivered  %7.0f/s  (%d with evidence 10 and 40, all done %.1f s after the start)\n", rep.DeliveredPS, rep.Delivered, rep.DeliverSecs)
	fmt.Printf("  latency    p50 %.1f ms, p99 %.1f ms (submission, DATA to 250)\n", rep.P50ms, rep.P99ms)
	if rep.PeakRSSMB > 0 {
		fmt.Printf("  server     peak RSS %.0f MB\n", rep.PeakRSSMB)
	}
	return nil
}

// base64Lines makes n bytes of printable text in 76-character lines.
func base64Lines(random []byte, n int) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, n)
	for i := 0; len(out) < n; i++ {
		if len(out)%78 == 76 {
			out = append(out, '\n')
			continue
		}
		out = append(out, alphabet[int(random[i%len(random)])%len(alphabet)])
	}
	return out
}

// peakRSS reads a process's peak resident set size (VmHWM), in MB.
func peakRSS(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// startDemoProcess runs `kep demo --quiet` in its own process (so that its
// memory is measured alone) with quotas large enough for the run.
func startDemoProcess(ctx context.Context, dir string) (func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "demo", "--dir", dir, "--quiet", "--quota", strconv.Itoa(1<<40))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}
	// The demo prints the path of demo.json once the world serves.
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		stop()
		return nil, fmt.Errorf("the demo world did not start: %w", err)
	}
	return stop, nil
}
