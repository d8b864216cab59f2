package main

import (
	"bufio"
	"context"
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

// benchReport is what kep bench measured for one kind of traffic.
type benchReport struct {
	Mode         string  `json:"mode"` // local (hs01 → hs01) or cross (hs01 → hs02)
	Messages     int     `json:"messages"`
	Size         int     `json:"size_bytes"`
	Sessions     int     `json:"sessions"`
	Recipients   int     `json:"recipients_per_message"`
	Accepted     int64   `json:"accepted"`
	Refused      int64   `json:"refused"`
	Errors       int64   `json:"errors"`
	SubmitSecs   float64 `json:"submit_seconds"`
	AcceptedPerS float64 `json:"accepted_per_second"`
	// Delivered counts evidence 40 for this run's own messages only
	// (matched by their Message-ID): issued by hs01 for a local
	// recipient, or — cross — hs02's 40 received back at hs01.
	Delivered   int64   `json:"delivered"`
	NotDeliv    int64   `json:"not_delivered"` // evidence 41 (or 21, cross) for this run's messages: the run fails
	DeliverSecs float64 `json:"deliver_seconds"`
	DeliveredPS float64 `json:"delivered_per_second"`
	P50ms       float64 `json:"latency_p50_ms"`
	P99ms       float64 `json:"latency_p99_ms"`
	PeakRSSMB   float64 `json:"server_peak_rss_mb"`
	// Server CPU (user + system time of the server process, from
	// /proc/PID/stat) from the first send until the last delivery was
	// seen, per delivered message.
	ServerPID     int     `json:"server_pid,omitempty"`
	ServerCPUSecs float64 `json:"server_cpu_seconds"`
	ServerCPUus   float64 `json:"server_cpu_us_per_message"`
	// Cross is the cross-provider run of the same invocation (--cross).
	Cross *benchReport `json:"cross,omitempty"`
}

func cmdBench(ctx context.Context, args []string) error {
	f := newFlags("bench", "[--demo DIR] [-n MESSAGES] [-c SESSIONS] [-s SIZE] [--cross] [--api] [--pid PID]")
	demoDir := f.String("demo", "", "a running 'kep demo' world to load (default: start a fresh one in a temporary directory)")
	n := f.Int("n", 20000, "messages to submit")
	c := f.Int("c", 32, "concurrent SMTP sessions")
	size := f.Int("s", 10240, "size of each message's signed text, in bytes")
	pool := f.Int("pool", 64, "distinct pre-signed messages (outer headers vary per send)")
	cross := f.Bool("cross", false, "after the local run, run the same load from hs01 to a person at hs02 and report both")
	pid := f.Int("pid", 0, "the server process whose CPU time is measured (default: the demo world's, from demo.json)")
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
	var elif *demo.AccountInfo
	if *cross {
		if elif, _ = info.Account("elif"); elif == nil || elif.Provider != "hs02" {
			return errors.New("--cross needs the demo world's person at hs02 (elif); this world has none: remove it and run kep demo again")
		}
	}
	b := &bench{n: *n, c: *c, size: *size, pid: *pid}
	if b.pid == 0 {
		b.pid = info.PID
	}
	is, err := pki.LoadIssued(ayse.Certificate, ayse.PrivateKey)
	if err != nil {
		return err
	}
	b.signer = &client.Signer{Key: is.Key, Cert: is.Cert, Chain: is.Chain}
	roots := x509.NewCertPool()
	cas, err := pki.LoadCertsPEM(info.Providers[0].CA)
	if err != nil {
		return err
	}
	roots.AddCert(cas[0])
	b.sub = client.Submission{Addr: info.Providers[0].Endpoints.Submission, Username: ayse.Username, Password: ayse.Password,
		TLS: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	cfg, err := config.Load(info.Providers[0].Config)
	if err != nil {
		return err
	}
	if b.db, err = store.Open(ctx, cfg.DSN()); err != nil {
		return err
	}
	defer b.db.Close()
	rep, err := b.run(ctx, "local", ayse.Address, mehmet.Address, *pool)
	if err == nil && *cross {
		rep.Cross, err = b.run(ctx, "cross", ayse.Address, elif.Address, *pool)
	}
	var apiRep *apiBenchReport
	if err == nil && *withAPI {
		msgs, perr := presign(b.signer, ayse.Address, mehmet.Address, b.size, *pool)
		if perr != nil {
			return perr
		}
		tag := fmt.Sprintf("%dapi", time.Now().UnixNano())
		apiRep, err = benchAPI(ctx, info, func(i int64) []byte { return msgs[int(i)%len(msgs)].raw(nil, tag, i) }, *n, *apiBatch, *apiC)
	}
	if rep != nil {
		if *asJSON {
			if apiRep != nil {
				printJSON(map[string]any{"smtp": rep, "api": apiRep})
			} else {
				printJSON(rep)
			}
		} else {
			rep.print()
			if rep.Cross != nil {
				rep.Cross.print()
			}
			if apiRep != nil {
				printAPIBench(apiRep)
			}
		}
	}
	return err
}

// bench is one kep bench invocation: where it submits and what it reads.
type bench struct {
	n, c, size int
	pid        int // the server process measured
	signer     *client.Signer
	sub        client.Submission
	db         *store.DB // hs01's database: its evidence and the evidence returned to it
}

// run submits b.n messages from one sender to one recipient and waits
// for the evidence of their delivery. It returns the report, and an
// error when a message of this run was not delivered (evidence 41, or 21
// from the other provider) or its delivery did not come.
func (b *bench) run(ctx context.Context, mode, from, to string, pool int) (*benchReport, error) {
	msgs, err := presign(b.signer, from, to, b.size, pool)
	if err != nil {
		return nil, err
	}
	rep := &benchReport{Mode: mode, Messages: b.n, Size: b.size, Sessions: b.c, Recipients: 1, ServerPID: b.pid}
	// This run's messages, and only they, are counted: its Message-IDs
	// carry a tag of its own, and the look-up starts after the last
	// message stored before it.
	tag := fmt.Sprintf("%d%s", time.Now().UnixNano(), mode)
	var lastMsg int64
	b.db.Q().QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM messages`).Scan(&lastMsg)
	cpu0, cpuErr := procCPU(b.pid)
	var next atomic.Int64
	lat := make([][]time.Duration, b.c)
	var wg sync.WaitGroup
	start := time.Now()
	for s := 0; s < b.c; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			conn, err := client.Dial(b.sub)
			if err != nil {
				atomic.AddInt64(&rep.Errors, 1)
				fmt.Fprintln(os.Stderr, "kep bench:", err)
				return
			}
			defer conn.Close()
			var raw []byte
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(b.n) {
					return
				}
				raw = msgs[int(i)%len(msgs)].raw(raw[:0], tag, i)
				t0 := time.Now()
				res, err := conn.Send(from, []string{to}, raw)
				lat[s] = append(lat[s], time.Since(t0))
				switch {
				case err != nil:
					atomic.AddInt64(&rep.Errors, 1)
					fmt.Fprintln(os.Stderr, "kep bench:", err)
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
	// Wait for every accepted message's delivery evidence.
	deadline := time.Now().Add(5 * time.Minute)
	var last time.Time
	for {
		var err error
		if rep.Delivered, rep.NotDeliv, last, err = b.outcomes(ctx, mode, lastMsg, tag); err != nil {
			return nil, err
		}
		if rep.Delivered+rep.NotDeliv >= rep.Accepted || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpu1, cpuErr1 := procCPU(b.pid)
	// The last delivery's own time, not when this loop saw it.
	if last.After(start) {
		rep.DeliverSecs = last.Sub(start).Seconds()
	} else {
		rep.DeliverSecs = time.Since(start).Seconds()
	}
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
	if b.pid > 0 {
		rep.PeakRSSMB = peakRSS(b.pid)
	}
	if cpuErr == nil && cpuErr1 == nil {
		rep.ServerCPUSecs = (cpu1 - cpu0).Seconds()
		if rep.Delivered > 0 {
			rep.ServerCPUus = float64((cpu1 - cpu0).Microseconds()) / float64(rep.Delivered)
		}
	} else if b.pid > 0 {
		fmt.Fprintf(os.Stderr, "kep bench: cannot read the server's CPU time (pid %d): %v\n", b.pid, errors.Join(cpuErr, cpuErr1))
	}
	switch {
	case rep.NotDeliv > 0:
		return rep, fmt.Errorf("%s run failed: %d of its messages were not delivered (evidence %s); "+
			"see the server's log and `kep evidence list` (a full mailbox? start the demo with a larger --quota)", mode, rep.NotDeliv, notDelivCodes(mode))
	case rep.Delivered < rep.Accepted:
		return rep, fmt.Errorf("%s run failed: %d of %d accepted messages had no delivery evidence after 5 minutes", mode, rep.Accepted-rep.Delivered, rep.Accepted)
	case rep.Errors > 0 || rep.Refused > 0:
		return rep, fmt.Errorf("%s run failed: %d session errors and %d refusals (see above)", mode, rep.Errors, rep.Refused)
	}
	return rep, nil
}

func notDelivCodes(mode string) string {
	if mode == "cross" {
		return "21 or 41 from hs02"
	}
	return "41"
}

// outcomes counts the delivery evidence of one run's messages: the
// messages stored after lastMsg whose Message-ID carries the run's tag.
// Local: the 40 and 41 hs01 issued. Cross: the 40, and the 21 and 41,
// that hs02 sent back to hs01 (the sender's view: the honest end-to-end
// figure). last is the time of the latest 40 (issued, or received back).
func (b *bench) outcomes(ctx context.Context, mode string, lastMsg int64, tag string) (delivered, not int64, last time.Time, err error) {
	q := `SELECT e.code, COUNT(*), COALESCE(MAX(e.event_time), 0) FROM messages m JOIN evidence e ON e.message_id = m.id
		WHERE m.id > ? AND m.header_id LIKE ? AND e.code IN (40, 41) GROUP BY e.code`
	if mode == "cross" {
		q = `SELECT f.code, COUNT(*), COALESCE(MAX(f.received_at), 0) FROM messages m JOIN foreign_evidence f ON f.message_id = m.id
		WHERE m.id > ? AND m.header_id LIKE ? AND f.code IN (21, 40, 41) GROUP BY f.code`
	}
	rows, err := b.db.Q().Query(ctx, q, lastMsg, "%bench-"+tag+"-%")
	if err != nil {
		return 0, 0, last, fmt.Errorf("counting the delivery evidence: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var code, count, ms int64
		if err := rows.Scan(&code, &count, &ms); err != nil {
			return 0, 0, last, err
		}
		if code == 40 {
			delivered, last = count, time.UnixMilli(ms)
		} else {
			not += count
		}
	}
	return delivered, not, last, rows.Err()
}

func (r *benchReport) print() {
	to := "a person at hs01"
	if r.Mode == "cross" {
		to = "a person at hs02, relayed"
	}
	fmt.Printf("kep bench %s: %d signed messages of %d B, %d SMTP sessions, 1 recipient each (%s)\n", r.Mode, r.Messages, r.Size, r.Sessions, to)
	fmt.Printf("  accepted   %7.0f/s  (%d in %.1f s; %d refused, %d errors)\n", r.AcceptedPerS, r.Accepted, r.SubmitSecs, r.Refused, r.Errors)
	if r.Mode == "cross" {
		fmt.Printf("  delivered  %7.0f/s  (%d with evidence 10 at hs01 and hs02's 40 back at hs01, the last %.1f s after the start; %d not delivered)\n",
			r.DeliveredPS, r.Delivered, r.DeliverSecs, r.NotDeliv)
	} else {
		fmt.Printf("  delivered  %7.0f/s  (%d with evidence 10 and 40, all done %.1f s after the start; %d with 41)\n", r.DeliveredPS, r.Delivered, r.DeliverSecs, r.NotDeliv)
	}
	fmt.Printf("  latency    p50 %.1f ms, p99 %.1f ms (submission, MAIL FROM to the 250 after the data)\n", r.P50ms, r.P99ms)
	if r.PeakRSSMB > 0 || r.ServerCPUSecs > 0 {
		fmt.Printf("  server     %.0f µs CPU per delivered message (%.1f s user+system of pid %d), peak RSS %.0f MB\n", r.ServerCPUus, r.ServerCPUSecs, r.ServerPID, r.PeakRSSMB)
	}
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
