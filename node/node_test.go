package node_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/node"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider/providertest"
)

func start(t *testing.T, w *providertest.World) *node.Running {
	t.Helper()
	r, err := node.Start(context.Background(), w.Node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func signed(t *testing.T, from string, signer *pki.Issued, to string) []byte {
	t.Helper()
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Metrics\r\nDate: %s\r\nMessage-ID: <%d@test>\r\nMIME-Version: 1.0\r\n",
		from, to, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	msg, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nMerhaba.\r\n"), signer.Key, signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// submit sends msg over STARTTLS with AUTH PLAIN and returns the reply to
// DATA, or the first error.
func submit(t *testing.T, addr, user, pass, from, to string, msg []byte) error {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	wc.Write(msg)
	return wc.Close()
}

// scrape reads /metrics into series → value ("name{labels}" as written).
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetrics starts a node, submits one message that is accepted and one
// that is refused, fails a login, and checks that the scraped counters
// moved: sessions and login failures per protocol, submissions by result
// and reason, evidence by code, deliveries by outcome, the queue, the log
// and its checkpoints, and the time stamps.
func TestMetrics(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		r := start(t, w)
		if r.Endpoints.Metrics == "" || !strings.HasPrefix(r.Endpoints.Metrics, "127.0.0.1:") {
			t.Fatalf("metrics endpoint %q, want a loopback address", r.Endpoints.Metrics)
		}
		before := scrape(t, r.Endpoints.Metrics)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		A, M := ayse.Account.Address, mehmet.Account.Address
		if err := submit(t, r.Endpoints.Submission, A, ayse.Password, A, M, signed(t, A, ayse.Signer, M)); err != nil && !strings.Contains(err.Error(), "Accepted") {
			t.Fatalf("submit: %v", err)
		}
		unsigned := []byte("From: " + A + "\r\nTo: " + M + "\r\nSubject: x\r\n\r\nhello\r\n")
		if err := submit(t, r.Endpoints.Submission, A, ayse.Password, A, M, unsigned); err == nil || !strings.Contains(err.Error(), "550") {
			t.Fatalf("unsigned: %v, want 550", err)
		}
		if err := submit(t, r.Endpoints.Submission, A, "wrong password", A, M, nil); err == nil {
			t.Fatal("wrong password accepted")
		}
		ic, err := imapclient.DialTLS(r.Endpoints.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
		if err != nil {
			t.Fatal(err)
		}
		if err := ic.Login(A, "wrong password").Wait(); err == nil {
			t.Fatal("IMAP: wrong password accepted")
		}
		ic.Close()

		want := []struct {
			series string
			delta  float64 // at least this much more than before
		}{
			{`kep_sessions_total{protocol="smtp"}`, 3},
			{`kep_auth_failures_total{protocol="smtp"}`, 1},
			{`kep_sessions_total{protocol="imap"}`, 1},
			{`kep_auth_failures_total{protocol="imap"}`, 1},
			{`kep_submissions_accepted_total`, 1},
			{`kep_evidence_issued_total{code="10"}`, 1},
			{`kep_evidence_issued_total{code="11"}`, 1},
			{`kep_evidence_issued_total{code="40"}`, 1},
			{`kep_deliveries_total{outcome="delivered"}`, 1},
			{`kep_log_size`, 3},
			{`kep_timestamp_seconds_count`, 1},
		}
		var after map[string]float64
		deadline := time.Now().Add(20 * time.Second)
		for {
			after = scrape(t, r.Endpoints.Metrics)
			missing := ""
			for _, c := range want {
				if after[c.series]-before[c.series] < c.delta {
					missing = c.series
					break
				}
			}
			// The checkpoint series appear with the first checkpoint, which
			// the checkpointer makes a moment after the first leaves.
			for _, name := range []string{"kep_checkpoint_age_seconds", "kep_checkpoint_size"} {
				if _, ok := after[name]; !ok && missing == "" {
					missing = name
				}
			}
			if missing == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not move: before %v, after %v", missing, before[missing], after[missing])
			}
			time.Sleep(200 * time.Millisecond)
		}
		refused := 0.0
		for k, v := range after {
			if strings.HasPrefix(k, "kep_submissions_refused_total{") && strings.Contains(k, "reason=") {
				refused += v
			}
		}
		if refused < 1 {
			t.Errorf("no refused submission counted: %v", after)
		}
		for _, name := range []string{"kep_queue_depth", "kep_queue_oldest_age_seconds", "kep_checkpoint_age_seconds", "kep_checkpoint_size",
			"kep_timestamp_failures_total", "go_goroutines"} {
			if _, ok := after[name]; !ok {
				t.Errorf("%s not exported", name)
			}
		}

		resp, err := http.Get("http://" + r.Endpoints.Metrics + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h node.Health
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || h.Status != "ok" || !h.Checks["database"].OK || !h.Checks["checkpoint"].OK {
			t.Fatalf("/healthz: %s %+v", resp.Status, h)
		}
	})
}
