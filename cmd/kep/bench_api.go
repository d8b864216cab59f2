package main

// kep bench --api: bulk submission through the REST API (docs/api.md),
// beside SMTP submission in the same run, on the same world and machine:
// the same pre-signed messages, sent in bulk calls of --api-batch messages
// by --api-c concurrent clients, each message with its own idempotency key.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
)

// apiBenchReport is what kep bench --api measured.
type apiBenchReport struct {
	Messages     int     `json:"messages"`
	Batch        int     `json:"messages_per_call"`
	Clients      int     `json:"concurrent_calls"`
	Accepted     int64   `json:"accepted"`
	Refused      int64   `json:"refused"`
	Errors       int64   `json:"errors"`
	Throttled    int64   `json:"throttled_calls"` // answered 429 and sent again after Retry-After
	Seconds      float64 `json:"seconds"`
	AcceptedPerS float64 `json:"accepted_per_second"`
	CallP50ms    float64 `json:"call_p50_ms"`
}

// benchAPI submits n messages (message(i) makes the i-th) through the
// REST API of the world's first provider, as Ayşe, in bulk calls.
func benchAPI(ctx context.Context, info *demo.Info, message func(i int64) []byte, n, batch, clients int) (*apiBenchReport, error) {
	p := info.Providers[0]
	cfg, err := config.Load(p.Config)
	if err != nil {
		return nil, err
	}
	adm, err := provider.OpenAdmin(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ayse, _ := info.Account("ayse")
	_, token, err := adm.Accounts.CreateToken(ctx, cliActor(), &account.Principal{Staff: "bench"}, ayse.Address, account.TokenRequest{Name: "kep bench --api"})
	adm.Close()
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	cas, err := pki.LoadCertsPEM(p.CA)
	if err != nil {
		return nil, err
	}
	roots.AddCert(cas[0])
	hc := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}, MaxIdleConnsPerHost: clients}}
	url := "https://" + p.Endpoints.HTTPS + "/api/v1/messages/bulk"

	rep := &apiBenchReport{Messages: n, Batch: batch, Clients: clients}
	type item struct {
		Key     string `json:"idempotency_key"`
		Message []byte `json:"message"`
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var next atomic.Int64
	var mu sync.Mutex
	var calls []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				first := next.Add(int64(batch)) - int64(batch)
				if first >= int64(n) {
					return
				}
				var req struct {
					Items []item `json:"items"`
				}
				for i := first; i < min(first+int64(batch), int64(n)); i++ {
					req.Items = append(req.Items, item{Key: run + "-" + strconv.FormatInt(i, 10), Message: message(n0 + i)})
				}
				body, _ := json.Marshal(req)
				for {
					t0 := time.Now()
					r, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
					r.Header.Set("Authorization", "Bearer "+token)
					r.Header.Set("Content-Type", "application/json")
					resp, err := hc.Do(r)
					if err != nil {
						atomic.AddInt64(&rep.Errors, int64(len(req.Items)))
						fmt.Fprintln(os.Stderr, "kep bench --api:", err)
						return
					}
					out, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusTooManyRequests {
						atomic.AddInt64(&rep.Throttled, 1)
						wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
						time.Sleep(time.Duration(max(wait, 1)) * time.Second)
						continue
					}
					mu.Lock()
					calls = append(calls, time.Since(t0))
					mu.Unlock()
					var res struct{ Accepted, Replayed, Refused, Failed int64 }
					if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &res) != nil {
						atomic.AddInt64(&rep.Errors, int64(len(req.Items)))
						fmt.Fprintf(os.Stderr, "kep bench --api: %s: %.300s\n", resp.Status, out)
						return
					}
					atomic.AddInt64(&rep.Accepted, res.Accepted+res.Replayed)
					atomic.AddInt64(&rep.Refused, res.Refused)
					atomic.AddInt64(&rep.Errors, res.Failed)
					break
				}
			}
		}()
	}
	wg.Wait()
	rep.Seconds = time.Since(start).Seconds()
	rep.AcceptedPerS = float64(rep.Accepted) / rep.Seconds
	if len(calls) > 0 {
		sort.Slice(calls, func(i, j int) bool { return calls[i] < calls[j] })
		rep.CallP50ms = float64(calls[len(calls)/2].Microseconds()) / 1000
	}
	return rep, nil
}

// n0 offsets the API's message numbers past the SMTP run's, so that every
// message of the run has its own Message-ID.
const n0 = 1 << 40

func printAPIBench(rep *apiBenchReport) {
	fmt.Printf("kep bench --api: %d messages in bulk calls of %d, %d calls at a time\n", rep.Messages, rep.Batch, rep.Clients)
	fmt.Printf("  accepted   %7.0f/s  (%d in %.1f s; %d refused, %d errors, %d calls throttled)\n", rep.AcceptedPerS, rep.Accepted, rep.Seconds, rep.Refused, rep.Errors, rep.Throttled)
	fmt.Printf("  per call   p50 %.0f ms\n", rep.CallP50ms)
}
