package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/pki"
)

// apiClient calls a node's REST API with one token.
type apiClient struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
}

func (c *apiClient) do(method, path, ctype string, body []byte) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// json calls and decodes a JSON answer, failing unless it is want.
func (c *apiClient) json(method, path, ctype string, body []byte, want int) map[string]any {
	c.t.Helper()
	status, b := c.do(method, path, ctype, body)
	var m map[string]any
	if status != want || json.Unmarshal(b, &m) != nil {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, b)
	}
	return m
}

// TestAPIAcrossProviders: in the demo world, ayşe at hs01 sends through
// hs01's API to mehmet (hs01) and elif (hs02); both read through their
// provider's API (a retrieval, 60). hs01's status endpoint then shows each
// recipient through delivered to read, with elif's evidence as hs02
// returned it (20, 40, 60); and hs01's API verifies a bundle of hs02's
// evidence downloaded from hs02's API, through the federation directory.
func TestAPIAcrossProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo world")
	}
	ctx := context.Background()
	w, err := demo.Start(ctx, t.TempDir(), demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: time.Minute}
	staff := &account.Principal{Staff: "test"}
	client := func(node int, key string) *apiClient {
		a, _ := w.Info.Account(key)
		if a == nil {
			t.Fatalf("no demo account %s", key)
		}
		_, secret, err := w.Nodes[node].Accounts.CreateToken(ctx, account.SystemActor, staff, a.Address, account.TokenRequest{Name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return &apiClient{t: t, base: "https://" + w.Info.Providers[node].Endpoints.HTTPS, token: secret, http: hc}
	}
	ayse, _ := w.Info.Account("ayse")
	mehmet, _ := w.Info.Account("mehmet")
	elif, _ := w.Info.Account("elif")
	aAPI, mAPI, eAPI := client(0, "ayse"), client(0, "mehmet"), client(1, "elif")
	signer, err := pki.LoadIssued(ayse.Certificate, ayse.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := signed(t, ayse.Address, signer, mehmet.Address+", "+elif.Address)
	acc := aAPI.json("POST", "/api/v1/messages", "message/rfc822", msg, http.StatusCreated)
	ref := fmt.Sprint(acc["ileti_id"])

	// Each recipient reads it through its own provider's API once it is
	// delivered there.
	read := func(c *apiClient, addr string) {
		inbox := "/api/v1/accounts/" + url.PathEscape(addr) + "/folders/INBOX/messages"
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			for _, m := range c.json("GET", inbox, "", nil, http.StatusOK)["messages"].([]any) {
				mm := m.(map[string]any)
				if k, _ := mm["kep"].(map[string]any); k != nil && k["ileti_id"] == ref {
					c.json("GET", fmt.Sprintf("%s/%v", inbox, mm["uid"]), "", nil, http.StatusOK)
					if status, b := c.do("GET", fmt.Sprintf("%s/%v/content", inbox, mm["uid"]), "", nil); status != http.StatusOK {
						t.Fatalf("%s reads: %d %s", addr, status, b)
					}
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the message did not reach %s", addr)
			}
		}
	}
	read(mAPI, mehmet.Address)
	read(eAPI, elif.Address)

	// The sender's status at hs01, polled until hs02's 60 has come back.
	var st map[string]any
	codes := map[string][]int{}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		st = aAPI.json("GET", "/api/v1/messages/"+url.PathEscape(ref)+"/status", "", nil, http.StatusOK)
		done := true
		for _, r := range st["recipients"].([]any) {
			r := r.(map[string]any)
			addr := r["address"].(string)
			codes[addr] = nil
			for _, e := range r["evidence"].([]any) {
				codes[addr] = append(codes[addr], int(e.(map[string]any)["code"].(float64)))
			}
			sort.Ints(codes[addr])
			done = done && r["state"] == "read"
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status did not reach read for every recipient: %v", st["recipients"])
		}
	}
	for _, r := range st["recipients"].([]any) {
		r := r.(map[string]any)
		addr := r["address"].(string)
		want := map[string]string{mehmet.Address: "[40 60]", elif.Address: "[20 40 60]"}[addr]
		if got := fmt.Sprint(codes[addr]); got != want {
			t.Errorf("%s: evidence %s, want %s", addr, got, want)
		}
		if local := r["local"] == true; local != (addr == mehmet.Address) {
			t.Errorf("%s: local %v", addr, r["local"])
		}
		if addr == elif.Address {
			for _, e := range r["evidence"].([]any) {
				if e.(map[string]any)["issued_by_recipient_provider"] != true {
					t.Errorf("elif's evidence %v is not marked as hs02's", e)
				}
			}
		}
	}
	if ev := st["evidence"].([]any); len(ev) != 1 || ev[0].(map[string]any)["code"].(float64) != float64(evidence.Accepted) {
		t.Errorf("the message's own evidence: %v", ev)
	}

	// A bundle of hs02's evidence, from hs02's API, verified by hs01's.
	var id string
	for _, e := range eAPI.json("GET", "/api/v1/messages/"+url.PathEscape(ref)+"/evidence", "", nil, http.StatusOK)["evidence"].([]any) {
		if e := e.(map[string]any); e["code"].(float64) == float64(evidence.Delivered) {
			id = e["id"].(string)
		}
	}
	if id == "" {
		t.Fatal("no evidence 40 at hs02")
	}
	if _, err := w.Nodes[1].Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	status, bundle := eAPI.do("GET", "/api/v1/evidence/"+id+"/bundle", "", nil)
	if status != http.StatusOK {
		t.Fatalf("hs02's bundle: %d %s", status, bundle)
	}
	v := aAPI.json("POST", "/api/v1/verify", evidence.BundleMediaType, bundle, http.StatusOK)
	if v["valid"] != true || v["verified_with"] != "directory" || v["issuer_provider"] != "hs02" {
		t.Fatalf("hs02's bundle at hs01's API: %v", v)
	}
	// Altered by one byte, it is not valid.
	bad := append([]byte(nil), bundle...)
	i := bytes.Index(bad, []byte("<"))
	bad[i+len(bad[i:])/2] ^= 1
	if v := aAPI.json("POST", "/api/v1/verify", evidence.BundleMediaType, bad, http.StatusOK); v["valid"] == true {
		t.Fatalf("an altered bundle verifies: %v", v)
	}
}
