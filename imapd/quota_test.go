package imapd

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// setQuota gives an account a quota and a usage, in bytes.
func setQuota(t *testing.T, w *providertest.World, a *store.Account, quota, used int64) {
	t.Helper()
	ctx := context.Background()
	a = w.Refresh(a)
	a.QuotaBytes = quota
	if err := store.UpdateAccountState(ctx, w.Q(), a); err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddAccountUsage(ctx, w.Q(), a.ID, used-a.UsedBytes); err != nil {
		t.Fatal(err)
	}
}

// GETQUOTAROOT and GETQUOTA (RFC 9208) with the go-imap client, for every
// kind of principal: the holder's root "", an operator's root per account
// it may read, none for the operator's placeholder INBOX, and NO
// [NONEXISTENT] for a root the principal may not see.
func TestQuota(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		hale := w.Person("Hale", "Kota")
		other := w.Person("Veli", "Baska")
		co, main := w.Company("Kota Lojistik", 0)
		emre := w.Operator(co, "Emre", "Okur", account.SubOperator, account.GrantRead)
		setQuota(t, w, hale.Account, 100<<20, 1500) // 102400 KiB, 1500 B → 2 KiB
		setQuota(t, w, co, 10<<20, 0)
		setQuota(t, w, other.Account, 0, 0) // no quota: a root without resources

		for _, tc := range []struct {
			name, user, pass, mbox string
			roots                  []string
			usage, limit           int64 // of the first root; limit 0: no resources
			otherRoot              string
		}{
			{"holder", hale.Account.Address, hale.Password, "INBOX", []string{""}, 2, 102400, other.Account.Address},
			{"holder-sent", hale.Account.Address, hale.Password, "Sent", []string{""}, 2, 102400, "acme"},
			{"no-quota", other.Account.Address, other.Password, "INBOX", []string{""}, 0, 0, hale.Account.Address},
			{"main-operator", main.TCKN, main.Password, co.Address + "/INBOX", []string{co.Address}, 0, 10240, hale.Account.Address},
			{"read-only-operator", emre.TCKN, emre.Password, co.Address + "/Delil", []string{co.Address}, 0, 10240, ""},
			{"operator-placeholder", emre.TCKN, emre.Password, "INBOX", nil, 0, 0, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := e.login(tc.user, tc.pass)
				if caps := c.Caps(); !caps.Has(imap.CapQuota) || !caps.Has("QUOTA=RES-STORAGE") {
					t.Fatalf("capabilities %v lack QUOTA, QUOTA=RES-STORAGE", caps)
				}
				got, err := c.GetQuotaRoot(tc.mbox).Wait()
				if err != nil {
					t.Fatalf("GETQUOTAROOT %s: %v", tc.mbox, err)
				}
				var roots []string
				for _, q := range got {
					roots = append(roots, q.Root)
				}
				if !slices.Equal(roots, tc.roots) {
					t.Fatalf("roots %q, want %q", roots, tc.roots)
				}
				if len(got) == 0 {
					return
				}
				res := got[0].Resources
				if tc.limit == 0 {
					if len(res) != 0 {
						t.Fatalf("resources %v, want none", res)
					}
				} else if r := res[imap.QuotaResourceStorage]; len(res) != 1 || r.Usage != tc.usage || r.Limit != tc.limit {
					t.Fatalf("resources %+v, want STORAGE %d %d", res, tc.usage, tc.limit)
				}
				q, err := c.GetQuota(tc.roots[0]).Wait()
				if err != nil || q.Root != tc.roots[0] {
					t.Fatalf("GETQUOTA %q: %+v %v", tc.roots[0], q, err)
				}
				if _, err := c.GetQuota(tc.otherRoot).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
					t.Fatalf("GETQUOTA of another's root %q: %v, want NO [NONEXISTENT]", tc.otherRoot, err)
				}
				if _, err := c.GetQuotaRoot("Nowhere").Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
					t.Fatalf("GETQUOTAROOT of no mailbox: %v, want NO [NONEXISTENT]", err)
				}
			})
		}
	})
}

// Python's imaplib getquotaroot, as a client script would ask.
func TestQuotaImaplib(t *testing.T) {
	python := testtool.Require(t, testtool.Python3)
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		p := w.Person("Kemal", "Kota")
		setQuota(t, w, p.Account, 50<<20, 4096)
		_, port, _ := net.SplitHostPort(e.tlsAddr)
		outb, err := exec.Command(python, "testdata/imaplib_quota.py", "localhost", port, w.Node.Config.Path("keys/provider-ca.crt"),
			p.Account.Address, p.Password, "INBOX").Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				t.Fatalf("imaplib: %v\n%s", err, ee.Stderr)
			}
			t.Fatal(err)
		}
		var out struct {
			Capabilities []string `json:"capabilities"`
			Status       string   `json:"status"`
			QuotaRoot    []string `json:"quotaroot"`
			Quota        []string `json:"quota"`
		}
		if err := json.Unmarshal(outb, &out); err != nil {
			t.Fatalf("%v: %s", err, outb)
		}
		t.Logf("imaplib saw: %s", outb)
		if out.Status != "OK" || !slices.Contains(out.Capabilities, "QUOTA") ||
			!slices.Equal(out.QuotaRoot, []string{`INBOX ""`}) || !slices.Equal(out.Quota, []string{`"" (STORAGE 4 51200)`}) {
			t.Fatalf("imaplib: %+v", out)
		}
	})
}
