package rehber_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/rehber"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// node is one provider: its store, accounts, Rehber service, its public
// HTTPS endpoint and its provider-to-provider endpoint.
type node struct {
	id       string
	db       *store.DB
	accounts *account.Service
	svc      *rehber.Service
	cert     *pki.Issued
	public   *httptest.Server
	peer     *httptest.Server
	hits     atomic.Int64 // requests its peer endpoint received
}

type world struct {
	t     *testing.T
	clock *clock
	ca    *pki.CA
	rng   *rand.Rand
	nodes map[string]*node
	mu    sync.Mutex
	dir   *directory.Directory
}

func (w *world) directory() *directory.Directory {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dir
}

// edit changes the directory the nodes see.
func (w *world) edit(fn func(d *directory.Directory)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := *w.dir
	d.Providers = append([]directory.Provider(nil), w.dir.Providers...)
	fn(&d)
	w.dir = &d
}

func tlsCert(is *pki.Issued) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: is.Key, Leaf: is.Cert}
}

func (w *world) issue(cn string) *pki.Issued {
	is, err := w.ca.IssueProvider(cn, []string{cn, "127.0.0.1"}, pki.ECDSAP256)
	if err != nil {
		w.t.Fatal(err)
	}
	return is
}

// newWorld starts hs01, hs02 and hs03 on backend db-maker open, with a
// directory listing all three.
func newWorld(t *testing.T, open func() *store.DB, limits rehber.Limits) *world {
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Provider CA"}, pki.ECDSAP256, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, clock: &clock{t: time.Now().UTC().Truncate(time.Millisecond)}, ca: ca,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11)), nodes: map[string]*node{}}
	w.dir = &directory.Directory{Format: directory.Format, Authority: "Test", Version: 1, IssuedAt: w.clock.Now()}
	for _, id := range []string{"hs01", "hs02", "hs03"} {
		db := open()
		n := &node{id: id, db: db, cert: w.issue(id + ".kep.tr")}
		n.accounts = &account.Service{DB: db, Provider: id, Domain: id + ".kep.tr", Now: w.clock.Now, Limiter: account.NewLimiter(db, w.clock.Now)}
		n.svc = &rehber.Service{DB: db, Provider: id, Directory: w.directory, Peers: &rehber.PeerClient{Cert: tlsCert(n.cert)},
			Timeout: 2 * time.Second, Limits: limits, Now: w.clock.Now}
		serverTLS := &tls.Config{Certificates: []tls.Certificate{tlsCert(n.cert)}}

		pub := http.NewServeMux()
		pub.Handle("/rehber/v1/", http.StripPrefix("/rehber/v1", n.svc.Handler(rehber.BasicAuth(n.accounts), nil)))
		n.public = httptest.NewUnstartedServer(pub)
		n.public.TLS = serverTLS.Clone()
		n.public.StartTLS()
		t.Cleanup(n.public.Close)

		peerMux := http.NewServeMux()
		ph := http.StripPrefix("/rehber/v1", n.svc.PeerHandler(nil))
		peerMux.Handle("/rehber/v1/", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			n.hits.Add(1)
			ph.ServeHTTP(rw, r)
		}))
		n.peer = httptest.NewUnstartedServer(peerMux)
		n.peer.TLS = rehber.PeerTLSConfig(serverTLS)
		n.peer.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
		n.peer.StartTLS()
		t.Cleanup(n.peer.Close)

		w.nodes[id] = n
		w.dir.Providers = append(w.dir.Providers, directory.Provider{
			ID: id, Name: strings.ToUpper(id) + " KEP", Domains: []string{id + ".kep.tr"}, Relay: "127.0.0.1:2525",
			Rehber:  n.peer.URL + "/rehber/v1/",
			TLSPins: []directory.Pin{{SPKISHA256: directory.SPKIPin(n.cert.Cert), Window: directory.Window{NotBefore: w.clock.Now().Add(-time.Hour)}}},
			Added:   w.clock.Now().Add(-time.Hour),
		})
	}
	return w
}

func (w *world) tckn() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return identity.GenerateTCKN(w.rng)
}

func (w *world) vkn() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return identity.GenerateVKN(w.rng)
}

// person opens a receive-only person account at provider id.
func (w *world) person(id, tckn, given, surname, password string) *store.Account {
	w.t.Helper()
	a, err := w.nodes[id].accounts.Create(context.Background(), account.SystemActor, account.CreateRequest{
		Kind: account.Person, Capability: account.ReceiveOnly, Owner: identity.ID{Scheme: identity.TCKN, Value: tckn},
		GivenName: given, Surname: surname, Password: password, VerifiedBy: "test", Activate: true})
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

func (w *world) org(id string, kind account.Kind, owner identity.ID, name string) *store.Account {
	w.t.Helper()
	a, err := w.nodes[id].accounts.Create(context.Background(), account.SystemActor, account.CreateRequest{
		Kind: kind, Capability: account.ReceiveOnly, Owner: owner, OwnerName: name, VerifiedBy: "test", Activate: true})
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

type reply struct {
	status  int
	header  http.Header
	answer  rehber.Answer
	problem rehber.Problem
}

// get asks a node's public endpoint.
func (w *world) get(id, path string, q url.Values, user, pass string) reply {
	w.t.Helper()
	n := w.nodes[id]
	req, _ := http.NewRequest(http.MethodGet, n.public.URL+"/rehber/v1/"+path+"?"+q.Encode(), nil)
	if path == "persons" { // the TCKN goes in a form body
		req, _ = http.NewRequest(http.MethodPost, n.public.URL+"/rehber/v1/persons", strings.NewReader(q.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	req.RemoteAddr = "" // the client's address is the test's loopback
	resp, err := n.public.Client().Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	return w.decode(resp)
}

func (w *world) decode(resp *http.Response) reply {
	w.t.Helper()
	body, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			w.t.Fatalf("Content-Type %q", ct)
		}
		if err := json.Unmarshal(body, &r.answer); err != nil {
			w.t.Fatalf("%v: %s", err, body)
		}
	} else {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			w.t.Fatalf("status %d with Content-Type %q: %s", resp.StatusCode, ct, body)
		}
		if err := json.Unmarshal(body, &r.problem); err != nil {
			w.t.Fatalf("%v: %s", err, body)
		}
		p := r.problem
		if p.Status != resp.StatusCode || p.Code == "" || p.Type != "urn:kep:problem:"+p.Code || p.Detail == "" || p.DetailTR == "" || p.Title == "" {
			w.t.Fatalf("incomplete problem: %s", body)
		}
	}
	return r
}

func addresses(a rehber.Answer) []string {
	var out []string
	for _, e := range a.Entries {
		out = append(out, e.Provider+" "+e.Address+" "+e.Status)
	}
	return out
}

func outcome(a rehber.Answer, id string) rehber.PeerOutcome {
	for _, p := range a.Providers {
		if p.ID == id {
			return p
		}
	}
	return rehber.PeerOutcome{ID: id, Status: "not asked"}
}

func each(t *testing.T, limits rehber.Limits, fn func(t *testing.T, w *world)) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		first := true
		open := func() *store.DB {
			if first {
				first = false
				return db
			}
			return storetest.Open(t, db.Dialect)
		}
		w := newWorld(t, open, limits)
		// hs03 is removed from the directory: it must never be asked.
		w.edit(func(d *directory.Directory) {
			removed := w.clock.Now().Add(-time.Minute)
			d.Providers[2].Removed = &removed
		})
		fn(t, w)
		if h := w.nodes["hs03"].hits.Load(); h != 0 {
			t.Errorf("the removed provider hs03 was asked %d times", h)
		}
	})
}

func TestOrganisations(t *testing.T) {
	each(t, rehber.Limits{}, func(t *testing.T, w *world) {
		mersis := "0123456789012345"
		vkn := w.vkn()
		w.org("hs01", account.Company, identity.ID{Scheme: identity.VKN, Value: vkn}, "DENİZ LOJİSTİK A.Ş.")
		w.org("hs02", account.Company, identity.ID{Scheme: identity.MERSIS, Value: mersis}, "Deniz Lojistik Ticaret Ltd. Şti.")
		w.org("hs02", account.Company, identity.ID{Scheme: identity.VKN, Value: w.vkn()}, "IŞIK GIDA SANAYİ")
		w.org("hs01", account.Public, identity.ID{Scheme: identity.DETSIS, Value: "12345678"}, "İstanbul Valiliği")
		closed := w.org("hs01", account.Company, identity.ID{Scheme: identity.VKN, Value: w.vkn()}, "Deniz Lojistik Kapanmış")
		if _, err := w.nodes["hs01"].accounts.Close(context.Background(), account.SystemActor, closed.Address, "test"); err != nil {
			t.Fatal(err)
		}
		// A peer's answer that claims an address at another provider is dropped.
		tests := []struct {
			name  string
			q     url.Values
			want  []string
			local bool
		}{
			{"name, Turkish upper case, both providers", url.Values{"name": {"deniz lojistik"}}, []string{"hs01", "hs02"}, false},
			{"name, ASCII for ş and ı", url.Values{"name": {"isik gida"}}, []string{"hs02"}, false},
			{"name, Turkish dotted capital İ", url.Values{"name": {"İSTANBUL"}}, []string{"hs01"}, false},
			{"name, dotless ı typed", url.Values{"name": {"ışık"}}, []string{"hs02"}, false},
			{"name, local scope", url.Values{"name": {"DENIZ"}, "scope": {"local"}}, []string{"hs01"}, true},
			{"mersis at the other provider", url.Values{"mersis": {mersis}}, []string{"hs02"}, false},
			{"vkn", url.Values{"vkn": {vkn}}, []string{"hs01"}, false},
			{"detsis", url.Values{"detsis": {"12345678"}}, []string{"hs01"}, false},
			{"nobody", url.Values{"name": {"yok böyle bir şirket"}}, nil, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := w.get("hs01", "organisations", tt.q, "", "")
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %+v", r.status, r.problem)
				}
				var got []string
				for _, e := range r.answer.Entries {
					got = append(got, e.Provider)
					if e.Name == "" || e.ID == "" || e.Status != "active" || !strings.HasSuffix(e.Address, "@"+e.Provider+".kep.tr") {
						t.Errorf("entry %+v", e)
					}
					if strings.Contains(e.Name, "Kapanmış") {
						t.Errorf("a closed account is listed: %+v", e)
					}
				}
				if strings.Join(got, ",") != strings.Join(tt.want, ",") {
					t.Errorf("providers of entries %v, want %v (%v)", got, tt.want, addresses(r.answer))
				}
				if o := outcome(r.answer, "hs02"); tt.local != (o.Status == "not asked") || (!tt.local && o.Status != "ok") {
					t.Errorf("hs02 outcome %+v (local %v)", o, tt.local)
				}
				if o := outcome(r.answer, "hs03"); o.Status != "not asked" {
					t.Errorf("removed provider in outcomes: %+v", o)
				}
			})
		}
		t.Run("only GET", func(t *testing.T) {
			resp, err := w.nodes["hs01"].public.Client().Post(w.nodes["hs01"].public.URL+"/rehber/v1/organisations?name=deniz", "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if r := w.decode(resp); r.status != 405 || r.problem.Code != "method-not-allowed" {
				t.Errorf("%d %+v", r.status, r.problem)
			}
		})
		refusals := []struct {
			name string
			path string
			q    url.Values
			code string
		}{
			{"two fields", "organisations", url.Values{"name": {"deniz"}, "vkn": {vkn}}, "invalid-query"},
			{"no field", "organisations", url.Values{}, "invalid-query"},
			{"short name", "organisations", url.Values{"name": {"d."}}, "invalid-query"},
			{"bad vkn", "organisations", url.Values{"vkn": {"123"}}, "invalid-query"},
			{"unknown path", "companies", url.Values{}, "not-found"},
		}
		for _, tt := range refusals {
			t.Run(tt.name, func(t *testing.T) {
				r := w.get("hs01", tt.path, tt.q, "", "")
				if r.problem.Code != tt.code {
					t.Errorf("got %d %+v, want %s", r.status, r.problem, tt.code)
				}
			})
		}
	})
}

func TestPersons(t *testing.T) {
	each(t, rehber.Limits{}, func(t *testing.T, w *world) {
		tckn := w.tckn()
		ayse := w.person("hs01", tckn, "Ayşe", "Yılmaz", "ayşenin parolası")
		w.person("hs02", tckn, "Ayşe", "Yılmaz", "başka bir parola")
		susp := w.person("hs02", tckn, "Ayşe", "Yılmaz", "üçüncü parola!")
		if _, err := w.nodes["hs02"].accounts.Suspend(context.Background(), account.SystemActor, susp.Address, "test"); err != nil {
			t.Fatal(err)
		}
		gone := w.person("hs01", tckn, "Ayşe", "Yılmaz", "dördüncü parola")
		if _, err := w.nodes["hs01"].accounts.Close(context.Background(), account.SystemActor, gone.Address, "test"); err != nil {
			t.Fatal(err)
		}
		other := w.tckn()
		w.person("hs02", other, "Mehmet", "Demir", "mehmetin parolası")
		user, pass := ayse.Address, "ayşenin parolası"

		t.Run("found at both providers", func(t *testing.T) {
			r := w.get("hs01", "persons", url.Values{"tckn": {tckn}}, user, pass)
			if r.status != http.StatusOK {
				t.Fatalf("%d %+v", r.status, r.problem)
			}
			got := addresses(r.answer)
			want := []string{"hs01 ayse.yilmaz@hs01.kep.tr active", "hs02 ayse.yilmaz.1@hs02.kep.tr suspended", "hs02 ayse.yilmaz@hs02.kep.tr active"}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("got %q, want %q", got, want)
			}
			for _, e := range r.answer.Entries {
				if e.Name != "" || e.ID != "" || e.Kind != "person" {
					t.Errorf("a person's entry says more than the address: %+v", e)
				}
			}
		})
		t.Run("unknown number: no entries", func(t *testing.T) {
			r := w.get("hs01", "persons", url.Values{"tckn": {w.tckn()}}, user, pass)
			if r.status != http.StatusOK || len(r.answer.Entries) != 0 || outcome(r.answer, "hs02").Status != "ok" {
				t.Errorf("%d %+v %+v", r.status, r.answer, r.problem)
			}
		})
		refusals := []struct {
			name       string
			q          url.Values
			user, pass string
			code       string
			status     int
		}{
			{"no login", url.Values{"tckn": {tckn}}, "", "", "unauthenticated", 401},
			{"wrong password", url.Values{"tckn": {tckn}}, user, "not the password", "bad-credentials", 401},
			{"bad check digit", url.Values{"tckn": {tckn[:10] + string('0'+(tckn[10]-'0'+1)%10)}}, user, pass, "invalid-tckn", 400},
			{"name search refused", url.Values{"name": {"Ayşe Yılmaz"}}, user, pass, "invalid-tckn", 400},
		}
		for _, tt := range refusals {
			t.Run(tt.name, func(t *testing.T) {
				r := w.get("hs01", "persons", tt.q, tt.user, tt.pass)
				if r.status != tt.status || r.problem.Code != tt.code {
					t.Fatalf("got %d %+v, want %d %s", r.status, r.problem, tt.status, tt.code)
				}
				if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("no WWW-Authenticate: %v", r.header)
				}
				if strings.Contains(r.problem.Detail+r.problem.DetailTR, tckn) {
					t.Errorf("the refusal shows the TCKN: %+v", r.problem)
				}
			})
		}

		t.Run("the TCKN in the URL is refused", func(t *testing.T) {
			pub := w.nodes["hs01"].public
			req, _ := http.NewRequest(http.MethodGet, pub.URL+"/rehber/v1/persons?tckn="+tckn, nil)
			req.SetBasicAuth(user, pass)
			resp, err := pub.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if r := w.decode(resp); r.status != 400 || r.problem.Code != "tckn-in-url" {
				t.Errorf("%d %+v", r.status, r.problem)
			}
			resp, err = pub.Client().Get(pub.URL + "/rehber/v1/persons")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if r := w.decode(resp); r.status != 405 || r.problem.Code != "method-not-allowed" || r.header.Get("Allow") != "POST" {
				t.Errorf("GET persons: %d %+v", r.status, r.problem)
			}
		})
		t.Run("audited, masked, at both providers", func(t *testing.T) {
			target := "TCKN:" + identity.Mask(tckn)
			recs, err := store.ListAudit(context.Background(), w.nodes["hs01"].db.Q(), target, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].Actor != "account:"+user || recs[0].Action != "rehber.tckn" || !strings.Contains(recs[0].Detail, "3 address(es)") || recs[0].Remote == "" {
				t.Errorf("hs01 audit: %+v", recs)
			}
			peer, err := store.ListAudit(context.Background(), w.nodes["hs02"].db.Q(), target, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(peer) != 1 || peer[0].Actor != "provider:hs01" || peer[0].Action != "rehber.peer.tckn" {
				t.Errorf("hs02 audit: %+v", peer)
			}
			for _, id := range []string{"hs01", "hs02"} {
				all, _ := store.ListAudit(context.Background(), w.nodes[id].db.Q(), "", 0)
				for _, r := range all {
					if strings.HasPrefix(r.Action, "rehber.") && (strings.Contains(r.Target+r.Detail, tckn) || strings.Contains(r.Target+r.Detail, other)) {
						t.Errorf("%s audit shows a TCKN: %+v", id, r)
					}
				}
			}
		})
	})
}

func TestRateLimits(t *testing.T) {
	limits := rehber.Limits{
		Principal: rehber.Budget{Max: 2, Window: time.Hour},
		Source:    rehber.Budget{Max: 3, Window: time.Hour},
		Peer:      rehber.Budget{Max: 4, Window: time.Hour},
		Public:    rehber.Budget{Max: 7, Window: time.Hour},
	}
	each(t, limits, func(t *testing.T, w *world) {
		a := w.person("hs01", w.tckn(), "Ali", "Kaya", "alinin parolası")
		b := w.person("hs01", w.tckn(), "Can", "Er", "canın parolası!")
		ask := func(user, pass string) reply {
			return w.get("hs01", "persons", url.Values{"tckn": {w.tckn()}, "scope": {"local"}}, user, pass)
		}
		for i := 0; i < 2; i++ {
			if r := ask(a.Address, "alinin parolası"); r.status != 200 {
				t.Fatalf("lookup %d: %d %+v", i, r.status, r.problem)
			}
		}
		r := ask(a.Address, "alinin parolası")
		if r.status != 429 || r.problem.Code != "rate-limited" || r.header.Get("Retry-After") != "3600" || r.problem.RetryAfter != 3600 {
			t.Fatalf("third lookup of a principal: %d %+v %v", r.status, r.problem, r.header)
		}
		// Another principal at the same source: one more, then the source budget is spent.
		if r := ask(b.Address, "canın parolası!"); r.status != 200 {
			t.Fatalf("%d %+v", r.status, r.problem)
		}
		if r := ask(b.Address, "canın parolası!"); r.status != 429 || r.problem.Code != "rate-limited" {
			t.Fatalf("source budget: %d %+v", r.status, r.problem)
		}
		recs, _ := store.ListAudit(context.Background(), w.nodes["hs01"].db.Q(), "", 0)
		refused := 0
		for _, rec := range recs {
			if rec.Action == "rehber.tckn" && strings.HasPrefix(rec.Detail, "refused") {
				refused++
			}
		}
		if refused != 2 {
			t.Errorf("%d refused lookups audited, want 2", refused)
		}
		// The window passes: the budget is back.
		w.clock.Advance(time.Hour + time.Second)
		if r := ask(a.Address, "alinin parolası"); r.status != 200 {
			t.Fatalf("after the window: %d %+v", r.status, r.problem)
		}
		// Per peer provider: hs02 answers hs01 four times an hour.
		for i := 0; i < 6; i++ {
			r := w.get("hs01", "organisations", url.Values{"name": {"herhangi"}}, "", "")
			o := outcome(r.answer, "hs02")
			if wantOK := i < 4; (o.Status == "ok") != wantOK {
				t.Fatalf("query %d: hs02 %+v", i, o)
			}
			if i >= 4 && !strings.Contains(o.Error, "rate-limited") {
				t.Errorf("query %d: %+v", i, o)
			}
		}
		// Public organisation queries per source: the seventh passes, the eighth waits.
		if r := w.get("hs01", "organisations", url.Values{"name": {"herhangi"}, "scope": {"local"}}, "", ""); r.status != 200 {
			t.Fatalf("seventh public query: %d %+v", r.status, r.problem)
		}
		if r := w.get("hs01", "organisations", url.Values{"name": {"herhangi"}}, "", ""); r.status != 429 || r.problem.Code != "rate-limited" || r.header.Get("Retry-After") == "" {
			t.Fatalf("eighth public query: %d %+v", r.status, r.problem)
		}
	})
}

// peerGet asks a node's provider-to-provider endpoint with a client
// certificate (none when cert is nil).
func (w *world) peerGet(id string, cert *pki.Issued) (reply, error) {
	n := w.nodes[id]
	c := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		c.Certificates = []tls.Certificate{tlsCert(cert)}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
	resp, err := client.Get(n.peer.URL + "/rehber/v1/organisations?name=deniz")
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	return w.decode(resp), nil
}

func TestPeers(t *testing.T) {
	each(t, rehber.Limits{}, func(t *testing.T, w *world) {
		w.org("hs02", account.Company, identity.ID{Scheme: identity.VKN, Value: w.vkn()}, "Deniz Lojistik")

		t.Run("a listed provider is answered", func(t *testing.T) {
			r, err := w.peerGet("hs02", w.nodes["hs01"].cert)
			if err != nil || r.status != 200 || len(r.answer.Entries) != 1 {
				t.Fatalf("%v %d %+v %+v", err, r.status, r.answer, r.problem)
			}
		})
		t.Run("a certificate the directory does not pin", func(t *testing.T) {
			r, err := w.peerGet("hs02", w.issue("hs01.kep.tr"))
			if err != nil || r.status != 403 || r.problem.Code != "unknown-provider" {
				t.Fatalf("%v %d %+v", err, r.status, r.problem)
			}
		})
		t.Run("a removed provider", func(t *testing.T) {
			r, err := w.peerGet("hs02", w.nodes["hs03"].cert)
			if err != nil || r.status != 403 || r.problem.Code != "provider-removed" {
				t.Fatalf("%v %d %+v", err, r.status, r.problem)
			}
		})
		t.Run("no client certificate: the handshake fails", func(t *testing.T) {
			if _, err := w.peerGet("hs02", nil); err == nil {
				t.Fatal("a client without a certificate was served")
			}
		})
		t.Run("the server's certificate is not the pinned one", func(t *testing.T) {
			w.edit(func(d *directory.Directory) {
				p := d.Providers[1]
				p.TLSPins = []directory.Pin{{SPKISHA256: directory.SPKIPin(w.issue("x").Cert), Window: p.TLSPins[0].Window}}
				d.Providers[1] = p
			})
			before := w.nodes["hs02"].hits.Load()
			r := w.get("hs01", "organisations", url.Values{"name": {"deniz"}}, "", "")
			o := outcome(r.answer, "hs02")
			if r.status != 200 || len(r.answer.Entries) != 0 || o.Status != "failed" || !strings.Contains(o.Error, "not pinned") {
				t.Fatalf("%d %+v", r.status, r.answer)
			}
			if w.nodes["hs02"].hits.Load() != before {
				t.Error("a request reached a server whose pin does not match")
			}
		})
		t.Run("a slow provider times out", func(t *testing.T) {
			slow := w.issue("hs04.kep.tr")
			release := make(chan struct{})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			srv.TLS = rehber.PeerTLSConfig(&tls.Config{Certificates: []tls.Certificate{tlsCert(slow)}})
			srv.StartTLS()
			defer srv.Close()
			defer close(release)
			w.edit(func(d *directory.Directory) {
				d.Providers = append(d.Providers, directory.Provider{ID: "hs04", Domains: []string{"hs04.kep.tr"}, Rehber: srv.URL + "/",
					TLSPins: []directory.Pin{{SPKISHA256: directory.SPKIPin(slow.Cert), Window: directory.Window{NotBefore: w.clock.Now().Add(-time.Hour)}}},
					Added:   w.clock.Now().Add(-time.Hour)})
			})
			w.nodes["hs01"].svc.Timeout = 300 * time.Millisecond
			start := time.Now()
			ans, err := w.nodes["hs01"].svc.Organisations(context.Background(), rehber.Query{Name: "deniz"}, true)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the lookup took %v", d)
			}
			if o := outcome(*ans, "hs04"); o.Status != "failed" {
				t.Errorf("hs04: %+v", o)
			}
		})
	})
}

func TestServiceErrors(t *testing.T) {
	each(t, rehber.Limits{}, func(t *testing.T, w *world) {
		svc := w.nodes["hs01"].svc
		if _, err := svc.Person(context.Background(), nil, "127.0.0.1", w.tckn(), false); !errors.Is(err, rehber.ErrNoPrincipal) {
			t.Errorf("no principal: %v", err)
		}
		tests := []struct {
			q    rehber.Query
			want error
		}{
			{rehber.Query{}, rehber.ErrBadQuery},
			{rehber.Query{Name: "ab"}, rehber.ErrBadQuery},
			{rehber.Query{MERSIS: "12"}, rehber.ErrBadQuery},
			{rehber.Query{DETSIS: "1234567x"}, rehber.ErrBadQuery},
			{rehber.Query{Name: "Çiçek"}, nil},
		}
		for _, tt := range tests {
			if _, err := svc.Organisations(context.Background(), tt.q, false); !errors.Is(err, tt.want) {
				t.Errorf("%+v: %v, want %v", tt.q, err, tt.want)
			}
		}
	})
}

func TestFold(t *testing.T) {
	tests := []struct{ in, want string }{
		{"DENİZ LOJİSTİK A.Ş.", "denizlojistikas"},
		{"IŞIK", "isik"},
		{"ışık", "isik"},
		{"Çağ Öğüt", "cagogut"},
	}
	for _, tt := range tests {
		if got := rehber.Fold(tt.in); got != tt.want {
			t.Errorf("Fold(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
