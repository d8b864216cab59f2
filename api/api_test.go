package api_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/api"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/rehber"
	"github.com/kephs/kep/submission"
	"github.com/kephs/kep/tlog"
)

// env is the API over a provider node under test, with people and tokens.
type env struct {
	t   *testing.T
	w   *providertest.World
	api *api.Server
	srv *httptest.Server

	ayse, mehmet, zehra *providertest.Person
	co                  *providertest.Person // the company's main operator (Account: the company)
	sub                 *providertest.Person // a sub-operator with the archive grant only
	sender              *providertest.Person // a sub-operator with the send grant only
	tokens              map[string]string    // ayse, mehmet, main, sub, sender
	tokenIDs            map[string]int64     // their ids
}

const maxTestMessage = 256 << 10

func newEnv(t *testing.T, w *providertest.World) *env {
	t.Helper()
	n := w.Node
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ap := submission.NewAccessPoint(n.Mailbox, n.Accounts, n.ESign, submission.Options{Domain: "hs01.kep.tr", MaxMessageBytes: maxTestMessage, Logger: quiet})
	s := &api.Server{Logger: quiet, Accounts: n.Accounts, Mailbox: n.Mailbox, Access: ap, Rehber: &rehber.Service{DB: n.DB, Provider: "hs01", Now: n.Now},
		Now: w.Clock.Now, ProviderID: "hs01"}
	ca, err := pki.LoadCertsPEM(n.Config.Path("keys/provider-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	s.Anchors = evidence.Anchors{ProviderCAs: x509.NewCertPool(), TSACAs: n.TSARoots, LogKeys: tlog.SplitKeys(n.LogKey)}
	s.Anchors.ProviderCAs.AddCert(ca[0])
	e := &env{t: t, w: w, api: s, srv: httptest.NewServer(s.Handler()), tokens: map[string]string{}, tokenIDs: map[string]int64{}}
	t.Cleanup(e.srv.Close)
	e.ayse, e.mehmet, e.zehra = w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk"), w.Person("Zehra", "Ak")
	_, e.co = w.Company("Deniz Lojistik", 0)
	e.sub = w.Operator(e.co.Account, "Emre", "Şahin", account.SubOperator, account.GrantArchive)
	e.sender = w.Operator(e.co.Account, "Sena", "Yazar", account.SubOperator, account.GrantSend)
	staff := &account.Principal{Staff: "test"}
	// In a fixed order, so that token ids are the same on every run.
	for _, spec := range []struct {
		name, addr, op string
	}{{"ayse", e.ayse.Account.Address, ""}, {"mehmet", e.mehmet.Account.Address, ""}, {"main", e.co.Account.Address, e.co.TCKN},
		{"sub", e.co.Account.Address, e.sub.TCKN}, {"sender", e.co.Account.Address, e.sender.TCKN}} {
		rec, secret, err := n.Accounts.CreateToken(context.Background(), account.SystemActor, staff, spec.addr, account.TokenRequest{Name: "test " + spec.name, OperatorTCKN: spec.op})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[spec.name], e.tokenIDs[spec.name] = secret, rec.ID
	}
	return e
}

// signed makes an S/MIME signed message from p (as From) to recipients.
func signed(t testing.TB, p *providertest.Person, from string, extra string, to ...string) []byte {
	t.Helper()
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Hesap ekstresi\r\nDate: %s\r\nMessage-ID: <%d.%s@client>\r\nX-TR-REM-iletiTip: standart\r\n%sMIME-Version: 1.0\r\n",
		from, strings.Join(to, ", "), time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), strconv.Itoa(len(to)), extra)
	msg, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nGizli içerik: ekstre 1.000 TL.\r\n"), p.Signer.Key, p.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// do makes a request and returns the status and body.
func (e *env) do(token, method, path string, body []byte, hdr ...string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return m
}

// check is one expected answer: the status, and for a problem its code.
type check struct {
	name   string
	token  string
	method string
	path   string
	body   []byte
	hdr    []string
	status int
	code   string // the problem's code, when status is an error
}

func (e *env) run(tests []check) map[string][]byte {
	e.t.Helper()
	out := map[string][]byte{}
	for _, tc := range tests {
		status, body, h := e.do(tc.token, tc.method, tc.path, tc.body, tc.hdr...)
		out[tc.name] = body
		if status != tc.status {
			e.t.Errorf("%s: %s %s: %d, want %d: %s", tc.name, tc.method, tc.path, status, tc.status, body)
			continue
		}
		if status >= 400 {
			p := decode(e.t, body)
			if p["code"] != tc.code || p["detail"] == "" || p["detail_tr"] == "" || p["type"] != "urn:kep:problem:"+tc.code || h.Get("Content-Type") != "application/problem+json" {
				e.t.Errorf("%s: problem %s, want code %s", tc.name, body, tc.code)
			}
		}
	}
	return out
}

func TestEndpoints(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ctx := context.Background()
		ayse, mehmet := e.ayse.Account.Address, e.mehmet.Account.Address
		raw := signed(t, e.ayse, ayse, "", mehmet)
		unsigned := []byte("From: " + ayse + "\r\nTo: " + mehmet + "\r\nSubject: x\r\n\r\nhello\r\n")
		tA, tM, tMain, tSub, tSend := e.tokens["ayse"], e.tokens["mehmet"], e.tokens["main"], e.tokens["sub"], e.tokens["sender"]
		// A signed message padded past the provider's limit: its header
		// names the sender and recipient of the rejection evidence.
		tooLarge := append(signed(t, e.ayse, ayse, "", mehmet), bytes.Repeat([]byte("x"), maxTestMessage)...)
		coInbox := "/api/v1/accounts/" + e.co.Account.Address + "/folders/INBOX/messages"

		// Sending one message, and every refusal.
		res := e.run([]check{
			{"submit", tA, "POST", "/api/v1/messages", raw, []string{"Idempotency-Key", "k1"}, 201, ""},
			{"submit replayed", tA, "POST", "/api/v1/messages", raw, []string{"Idempotency-Key", "k1"}, 200, ""},
			{"submit key reused", tA, "POST", "/api/v1/messages", signed(t, e.ayse, ayse, "", mehmet), []string{"Idempotency-Key", "k1"}, 409, "idempotency-key-reused"},
			{"submit key too long", tA, "POST", "/api/v1/messages", raw, []string{"Idempotency-Key", strings.Repeat("k", 201)}, 422, "bad-idempotency-key"},
			{"submit unsigned", tA, "POST", "/api/v1/messages", unsigned, nil, 422, "not-signed"},
			{"submit bcc", tA, "POST", "/api/v1/messages", signed(t, e.ayse, ayse, "Bcc: "+e.zehra.Account.Address+"\r\n", mehmet), nil, 422, "bcc-not-empty"},
			{"submit as another", tM, "POST", "/api/v1/messages", raw, nil, 422, "from-mismatch"},
			{"submit outside KEP", tA, "POST", "/api/v1/messages", signed(t, e.ayse, ayse, "", "someone@gmail.com"), nil, 422, "recipient-not-kep"},
			{"submit too large", tA, "POST", "/api/v1/messages", tooLarge, nil, 413, "size-limit"},
			{"submit send grant only", tSend, "POST", "/api/v1/messages", signed(t, e.sender, e.co.Account.Address, "", mehmet), nil, 201, ""},
			{"send grant only reads nothing", tSend, "GET", coInbox, nil, nil, 404, "not-found"},
			{"send grant only lists the account", tSend, "GET", "/api/v1/accounts", nil, nil, 200, ""},
			{"submit no grant", tSub, "POST", "/api/v1/messages", signed(t, e.sub, e.co.Account.Address, "", mehmet), nil, 422, "no-send-grant"},
			{"submit no token", "", "POST", "/api/v1/messages", raw, nil, 401, "unauthenticated"},
			{"submit bad token", "kep_forged", "POST", "/api/v1/messages", raw, nil, 401, "invalid-token"},
			{"no such route", tA, "GET", "/api/v1/nothing", nil, nil, 404, "not-found"},
		})
		// Bulk: partial success, item by item.
		b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
		bulk := `{"items":[{"idempotency_key":"b1","message":"` + b64(signed(t, e.ayse, ayse, "", e.zehra.Account.Address)) + `"},` +
			`{"idempotency_key":"b2","message":"` + b64(unsigned) + `"},` +
			`{"idempotency_key":"","message":"` + b64(raw) + `"},` +
			`{"idempotency_key":"b4","message":""}]}`
		bres := e.run([]check{
			{"bulk", tA, "POST", "/api/v1/messages/bulk", []byte(bulk), nil, 200, ""},
			{"bulk empty", tA, "POST", "/api/v1/messages/bulk", []byte(`{"items":[]}`), nil, 400, "bulk-size"},
			{"bulk bad json", tA, "POST", "/api/v1/messages/bulk", []byte(`{"items":`), nil, 400, "bad-json"},
			{"bulk no token", "", "POST", "/api/v1/messages/bulk", []byte(bulk), nil, 401, "unauthenticated"},
		})
		var br struct {
			Accepted, Refused int
			Items             []struct {
				Status  int
				Problem *struct{ Code string }
			}
		}
		if err := json.Unmarshal(bres["bulk"], &br); err != nil {
			t.Fatal(err)
		}
		if br.Accepted != 1 || br.Refused != 3 || br.Items[0].Status != 201 || br.Items[1].Problem.Code != "not-signed" ||
			br.Items[2].Problem.Code != "missing-idempotency-key" || br.Items[3].Problem.Code != "empty-message" {
			t.Fatalf("bulk: %s", bres["bulk"])
		}
		acc := decode(t, res["submit"])
		id := strconv.Itoa(int(acc["message_id"].(float64)))
		if again := decode(t, res["submit replayed"]); again["message_id"] != acc["message_id"] || again["replayed"] != true {
			t.Fatalf("replay: %v vs %v", again, acc)
		}
		// A refusal says what the SMTP reply and the rejection evidence say.
		p := decode(t, res["submit unsigned"])
		if p["smtp_code"] != "550 5.7.5" || p["reason"] != evidence.ReasonCodeNotSigned {
			t.Fatalf("refusal problem: %v", p)
		}
		es, err := w.Node.Mailbox.ListEvidence(ctx, &account.Principal{Account: e.ayse.Account}, mailbox.EvidenceQuery{Account: e.ayse.Account})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range es {
			found = found || ev.Code == evidence.Rejected && ev.Reason == p["detail"]
		}
		if !found {
			t.Fatalf("no rejection evidence with the problem's reason %q", p["detail"])
		}
		// Too large: refused through the access point as SMTP's DATA is,
		// with rejection evidence of the same reason.
		big := decode(t, res["submit too large"])
		found = false
		for _, ev := range es {
			found = found || ev.Code == evidence.Rejected && ev.Reason == big["detail"]
		}
		if !found || big["smtp_code"] != "552 5.3.4" {
			t.Fatalf("no rejection evidence for the message too large (%v)", big)
		}
		if l := decode(t, res["send grant only lists the account"])["accounts"].([]any); len(l) != 1 || l[0].(map[string]any)["grants"] != "send" {
			t.Fatalf("a send-only token's accounts: %v", l)
		}
		if _, err := w.Node.Mailbox.DeliverQueued(ctx, 100); err != nil {
			t.Fatal(err)
		}

		// Reading, status, evidence.
		inbox := "/api/v1/accounts/" + mehmet + "/folders/INBOX/messages"
		res = e.run([]check{
			{"status sender", tA, "GET", "/api/v1/messages/" + id + "/status", nil, nil, 200, ""},
			{"status by ileti id", tA, "GET", "/api/v1/messages/" + acc["ileti_id"].(string) + "/status", nil, nil, 200, ""},
			{"status recipient", tM, "GET", "/api/v1/messages/" + id + "/status", nil, nil, 200, ""},
			{"status stranger", tMain, "GET", "/api/v1/messages/" + id + "/status", nil, nil, 404, "not-found"},
			{"status none", tA, "GET", "/api/v1/messages/999999/status", nil, nil, 404, "not-found"},
			{"list", tM, "GET", inbox, nil, nil, 200, ""},
			{"list page", tM, "GET", inbox + "?limit=1&after=0", nil, nil, 200, ""},
			{"list bad limit", tM, "GET", inbox + "?limit=1000", nil, nil, 400, "bad-limit"},
			{"list bad cursor", tM, "GET", inbox + "?after=x", nil, nil, 400, "bad-cursor"},
			{"list no folder", tM, "GET", "/api/v1/accounts/" + mehmet + "/folders/Nothing/messages", nil, nil, 404, "not-found"},
			{"folders", tM, "GET", "/api/v1/accounts/" + mehmet + "/folders", nil, nil, 200, ""},
			{"message", tM, "GET", inbox + "/1", nil, nil, 200, ""},
			{"message none", tM, "GET", inbox + "/999", nil, nil, 404, "not-found"},
			{"content", tM, "GET", inbox + "/1/content", nil, nil, 200, ""},
			{"content none", tM, "GET", inbox + "/999/content", nil, nil, 404, "not-found"},
			{"status read", tA, "GET", "/api/v1/messages/" + id + "/status", nil, nil, 200, ""},
			{"evidence", tA, "GET", "/api/v1/messages/" + id + "/evidence", nil, nil, 200, ""},
			{"evidence none", tA, "GET", "/api/v1/messages/999999/evidence", nil, nil, 404, "not-found"},
			{"original sender", tA, "GET", "/api/v1/messages/" + id + "/original", nil, nil, 200, ""},
			{"original recipient", tM, "GET", "/api/v1/messages/" + id + "/original", nil, nil, 200, ""},
			{"original none", tA, "GET", "/api/v1/messages/999999/original", nil, nil, 404, "not-found"},
		})
		st := decode(t, res["status sender"])
		if r := st["recipients"].([]any)[0].(map[string]any); r["state"] != "delivered" || r["address"] != mehmet {
			t.Fatalf("status before reading: %v", st)
		}
		if r := decode(t, res["status read"])["recipients"].([]any)[0].(map[string]any); r["state"] != "read" {
			t.Fatalf("content as the recipient is a retrieval: %v", r)
		}
		for _, name := range []string{"list", "message"} {
			if bytes.Contains(res[name], []byte("Gizli")) || bytes.Contains(res[name], []byte("ekstre")) {
				t.Fatalf("%s shows the body: %s", name, res[name])
			}
		}
		if page := decode(t, res["list page"]); len(page["messages"].([]any)) != 1 {
			t.Fatalf("page: %v", page)
		}
		if !bytes.Equal(res["original sender"], raw) || !bytes.Equal(res["original recipient"], raw) {
			t.Fatal("the original is not byte for byte")
		}
		var codes []int
		for _, ev := range decode(t, res["evidence"])["evidence"].([]any) {
			codes = append(codes, int(ev.(map[string]any)["code"].(float64)))
		}
		if fmt.Sprint(codes) != "[10 40 60]" {
			t.Fatalf("evidence codes %v", codes)
		}

		// Bundles and verification.
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		evID := acc["evidence_id"].(string)
		res = e.run([]check{
			{"bundle", tA, "GET", "/api/v1/evidence/" + evID + "/bundle", nil, nil, 200, ""},
			{"bundle stranger", tMain, "GET", "/api/v1/evidence/" + evID + "/bundle", nil, nil, 404, "not-found"},
			{"bundle none", tA, "GET", "/api/v1/evidence/nothing/bundle", nil, nil, 404, "not-found"},
			{"verify not a bundle", tA, "POST", "/api/v1/verify", []byte("PK nothing"), nil, 400, "not-a-bundle"},
			{"verify bad form", tA, "POST", "/api/v1/verify", []byte("--x\r\n"), []string{"Content-Type", "multipart/form-data; boundary=y"}, 400, "bad-form"},
		})
		bundle := res["bundle"]
		form := func(parts map[string][]byte) ([]byte, string) {
			var b bytes.Buffer
			mw := multipart.NewWriter(&b)
			for name, data := range parts {
				fw, _ := mw.CreateFormFile(name, name)
				fw.Write(data)
			}
			mw.Close()
			return b.Bytes(), mw.FormDataContentType()
		}
		for _, v := range []struct {
			name  string
			parts map[string][]byte
			valid bool
		}{
			{"bundle alone", map[string][]byte{"bundle": bundle}, true},
			{"with its original", map[string][]byte{"bundle": bundle, "original": raw}, true},
			{"with another original", map[string][]byte{"bundle": bundle, "original": unsigned}, false},
		} {
			body, ct := form(v.parts)
			status, out, _ := e.do(tA, "POST", "/api/v1/verify", body, "Content-Type", ct)
			if status != 200 || decode(t, out)["valid"] != v.valid {
				t.Errorf("verify %s: %d %s", v.name, status, out)
			}
		}
		if status, out, _ := e.do(tA, "POST", "/api/v1/verify", bundle, "Content-Type", evidence.BundleMediaType); status != 200 || decode(t, out)["valid"] != true {
			t.Errorf("verify raw: %d %s", status, out)
		}

		// Accounts, usage, operators and grants, tokens, webhooks, Rehberi.
		coAddr := e.co.Account.Address
		ops := "/api/v1/accounts/" + coAddr + "/operators"
		res = e.run([]check{
			{"me", tSub, "GET", "/api/v1/me", nil, nil, 200, ""},
			{"accounts", tA, "GET", "/api/v1/accounts", nil, nil, 200, ""},
			{"account", tA, "GET", "/api/v1/accounts/" + ayse, nil, nil, 200, ""},
			{"account other", tA, "GET", "/api/v1/accounts/" + mehmet, nil, nil, 404, "not-found"},
			{"usage", tA, "GET", "/api/v1/accounts/" + ayse + "/usage", nil, nil, 200, ""},
			{"usage bad date", tA, "GET", "/api/v1/accounts/" + ayse + "/usage?from=yesterday", nil, nil, 400, "bad-date"},
			{"usage backwards", tA, "GET", "/api/v1/accounts/" + ayse + "/usage?from=2026-02-01&to=2026-01-01", nil, nil, 400, "bad-period"},
			{"operators", tMain, "GET", ops, nil, nil, 200, ""},
			{"operators sub", tSub, "GET", ops, nil, nil, 403, "not-manager"},
			{"operators other", tA, "GET", ops, nil, nil, 404, "no-such-account"},
		})
		if u := decode(t, res["usage"]); u["messages"] != 2.0 || u["recipients"] != 2.0 { // the single one and the bulk one
			t.Fatalf("usage: %v", u)
		}
		if me := decode(t, res["me"]); me["acts_as"] != "operator" || strings.Contains(string(res["me"]), e.sub.TCKN) {
			t.Fatalf("me: %s", res["me"])
		}
		var subID string
		for _, o := range decode(t, res["operators"])["operators"].([]any) {
			if o := o.(map[string]any); o["role"] == "sub" {
				subID = strconv.Itoa(int(o["id"].(float64)))
			}
		}
		grants := ops + "/" + subID + "/grants"
		toks := "/api/v1/accounts/" + coAddr + "/tokens"
		hooks := "/api/v1/accounts/" + coAddr + "/webhooks"
		res = e.run([]check{
			{"grants", tMain, "PUT", grants, []byte(`{"grants":"read,archive"}`), nil, 200, ""},
			{"grants unknown", tMain, "PUT", grants, []byte(`{"grants":"fly"}`), nil, 400, "bad-grants"},
			{"grants bad json", tMain, "PUT", grants, []byte(`{"grant":"read"}`), nil, 400, "bad-json"},
			{"grants no operator", tMain, "PUT", ops + "/999999/grants", []byte(`{"grants":"read"}`), nil, 404, "no-such-operator"},
			{"grants by sub", tSub, "PUT", grants, []byte(`{"grants":"read,send"}`), nil, 403, "not-manager"},
			{"token create", tMain, "POST", toks, []byte(`{"name":"erp","operator_tckn":"` + e.sub.TCKN + `"}`), nil, 201, ""},
			{"token create holder by operator", tMain, "POST", toks, []byte(`{"name":"erp"}`), nil, 400, "bad-token-request"},
			{"token create unknown operator", tMain, "POST", toks, []byte(`{"name":"erp","operator_tckn":"10000000146"}`), nil, 404, "no-such-operator"},
			{"token create by sub", tSub, "POST", toks, []byte(`{"name":"x","operator_tckn":"` + e.sub.TCKN + `"}`), nil, 403, "not-manager"},
			{"tokens", tMain, "GET", toks, nil, nil, 200, ""},
			{"tokens revoke none", tMain, "DELETE", toks + "/999999", nil, nil, 404, "no-such-token"},
			{"webhook bad url", tMain, "POST", hooks, []byte(`{"url":"ftp://x"}`), nil, 400, "bad-webhook-url"},
			{"webhook bad code", tMain, "POST", hooks, []byte(`{"url":"https://erp.example/kep","codes":[99]}`), nil, 400, "bad-evidence-code"},
			{"webhook", tMain, "POST", hooks, []byte(`{"url":"https://erp.example/kep","codes":[40,60]}`), nil, 201, ""},
			{"webhooks", tMain, "GET", hooks, nil, nil, 200, ""},
			{"webhook delete none", tMain, "DELETE", hooks + "/999999", nil, nil, 404, "no-such-webhook"},
			{"rehber", tA, "GET", "/api/v1/rehber/organisations?name=deniz&scope=local", nil, nil, 200, ""},
			{"rehber bad", tA, "GET", "/api/v1/rehber/organisations?name=d", nil, nil, 400, "invalid-query"},
			{"rehber person", tA, "POST", "/api/v1/rehber/persons", []byte("tckn=" + e.mehmet.TCKN + "&scope=local"), []string{"Content-Type", "application/x-www-form-urlencoded"}, 200, ""},
			{"rehber person bad", tA, "POST", "/api/v1/rehber/persons", []byte("tckn=123&scope=local"), []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, "invalid-tckn"},
		})
		if !strings.Contains(string(res["rehber"]), coAddr) || !strings.Contains(string(res["rehber person"]), mehmet) {
			t.Fatalf("rehber: %s %s", res["rehber"], res["rehber person"])
		}
		newTok := decode(t, res["token create"])
		secret := newTok["token"].(string)
		if strings.Contains(string(res["tokens"]), secret) {
			t.Fatal("a token list shows a secret")
		}
		hookID := strconv.Itoa(int(decode(t, res["webhook"])["id"].(float64)))
		e.run([]check{
			{"new token works", secret, "GET", "/api/v1/me", nil, nil, 200, ""},
			{"token revoke", tMain, "DELETE", toks + "/" + strconv.Itoa(int(newTok["id"].(float64))), nil, nil, 200, ""},
			{"revoked token", secret, "GET", "/api/v1/me", nil, nil, 401, "invalid-token"},
			{"webhook delete", tMain, "DELETE", hooks + "/" + hookID, nil, nil, 204, ""},
			{"webhook delete again", tMain, "DELETE", hooks + "/" + hookID, nil, nil, 404, "no-such-webhook"},
		})
	})
}

// TestRateLimit: a token bucket per token; 429 with Retry-After.
func TestRateLimit(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		e.api.Limits = api.Limits{Rate: 0.5, Burst: 3}
		for i := 0; i < 3; i++ {
			if status, body, _ := e.do(e.tokens["ayse"], "GET", "/api/v1/me", nil); status != 200 {
				t.Fatalf("request %d: %d %s", i, status, body)
			}
		}
		status, body, h := e.do(e.tokens["ayse"], "GET", "/api/v1/me", nil)
		if status != 429 || h.Get("Retry-After") != "2" || decode(t, body)["code"] != "rate-limited" {
			t.Fatalf("over the limit: %d %s %q", status, body, h.Get("Retry-After"))
		}
		// Another token has its own bucket; time refills.
		if status, _, _ := e.do(e.tokens["mehmet"], "GET", "/api/v1/me", nil); status != 200 {
			t.Fatal("buckets are shared between tokens")
		}
		w.Clock.Advance(2 * time.Second)
		if status, _, _ := e.do(e.tokens["ayse"], "GET", "/api/v1/me", nil); status != 200 {
			t.Fatal("the bucket did not refill")
		}
		// A bulk call costs one unit per message.
		items := `{"items":[` + strings.TrimSuffix(strings.Repeat(`{"idempotency_key":"k","message":"eA=="},`, 4), ",") + `]}`
		if status, body, _ := e.do(e.tokens["mehmet"], "POST", "/api/v1/messages/bulk", []byte(items)); status != 413 || decode(t, body)["code"] != "over-burst" {
			t.Fatalf("bulk over the burst: %d %s", status, body)
		}
	})
}
