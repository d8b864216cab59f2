package publicweb_test

import (
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowUploadGivesBackItsSlot: an upload that stalls (slowloris) holds
// its verification slot only until UploadTimeout, so that a few slow
// senders cannot keep the page busy for everyone; the stalled sender is
// told why.
func TestSlowUploadGivesBackItsSlot(t *testing.T) {
	f := newFixture(t)
	f.site.MaxVerifying = 1
	f.site.UploadTimeout = 500 * time.Millisecond
	pr, pw := io.Pipe()
	defer pw.Close()
	mw := multipart.NewWriter(pw)
	type answer struct {
		status int
		body   string
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.Post(f.srv.URL+"/dogrula", mw.FormDataContentType(), pr)
		if err != nil {
			done <- answer{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- answer{resp.StatusCode, string(b)}
	}()
	fw, _ := mw.CreateFormFile("bundle", "delil.zip")
	fw.Write(f.bundle[:100]) // and then nothing more
	start := time.Now()
	for {
		status, _ := upload(t, f.srv.URL, map[string][]byte{"bundle": f.bundle})
		if status == http.StatusOK {
			break
		}
		if status != http.StatusServiceUnavailable || time.Since(start) > 5*time.Second {
			t.Fatalf("a verification while one upload stalls: %d after %s", status, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case a := <-done:
		if a.status != http.StatusRequestTimeout || !strings.Contains(a.body, "did not arrive within") {
			t.Errorf("the stalled upload: %d", a.status)
		}
	case <-time.After(5 * time.Second):
		t.Error("the stalled upload got no answer")
	}
}

// TestHeadersEverywhere: every answer of the public pages, errors of the
// router included, carries the CSP and refuses framing.
func TestHeadersEverywhere(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/dogrula", 200},
		{"GET", "/denetim", 200},
		{"GET", "/static/public.css", 200},
		{"PUT", "/dogrula", 405},
		{"DELETE", "/denetim", 405},
		{"GET", "/dogrula/x", 404},
	} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: %d %v", tc.method, tc.path, resp.StatusCode, resp.Header)
		}
	}
}
