package account_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

func TestNormalizePhone(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"+90 532 123 45 67", "+905321234567", ""},
		{"0532-123-45-67", "+905321234567", ""},
		{"0090 (532) 1234567", "+905321234567", ""},
		{"+4915112345678", "+4915112345678", ""},
		{"5321234567", "", "international form"},
		{"+90 532 ABC", "", "has"},
		{"+12", "", "international form"},
	} {
		got, err := account.NormalizePhone(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want one saying %q", c.in, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "1234567") {
				t.Errorf("%q: the refusal shows the whole number: %v", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestMasks(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{account.MaskPhone("+905321234567"), "+90********67"},
		{account.MaskEmail("ayse.yilmaz@example.com"), "a***@***.com"},
		{account.MaskEmail("x@localhost"), "x***@***"},
		{account.MaskEmail("nobody"), "***"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestNoticePrefs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		co, err := w.svc.Create(ctx, actor, account.CreateRequest{Kind: account.Company, Owner: identity.ID{Scheme: identity.VKN, Value: identity.GenerateVKN(w.rng)},
			OwnerName: "Deniz Lojistik", VerifiedBy: "desk", Activate: true})
		if err != nil {
			t.Fatal(err)
		}
		mainT, subT := identity.GenerateTCKN(w.rng), identity.GenerateTCKN(w.rng)
		for _, op := range []account.OperatorRequest{
			{TCKN: mainT, Name: "Zeynep Kaya", Password: "main operator pw", Role: account.MainOperator},
			{TCKN: subT, Name: "Emre Şahin", Password: "sub operator pw", Grants: account.GrantRead | account.GrantSMSNotice},
		} {
			if _, err := w.svc.AddOperator(ctx, actor, co.Address, op); err != nil {
				t.Fatal(err)
			}
		}
		str := func(s string) *string { return &s }
		steps := []struct {
			name  string
			tckn  string
			ch    account.NoticeChange
			err   error
			match string
		}{
			{"owner both", "", account.NoticeChange{SMS: str("0532 111 22 33"), Email: str("muhasebe@deniz.example")}, nil, ""},
			{"owner KEP e-mail refused", "", account.NoticeChange{Email: str("x@hs02.kep.tr")}, nil, "not a KEP address"},
			{"main both", mainT, account.NoticeChange{SMS: str("+905322223344"), Email: str("zeynep@deniz.example")}, nil, ""},
			{"sub sms", subT, account.NoticeChange{SMS: str("+905323334455")}, nil, ""},
			{"sub email without grant", subT, account.NoticeChange{Email: str("emre@deniz.example")}, account.ErrNoticeGrant, "email-notice"},
			{"stranger", identity.GenerateTCKN(w.rng), account.NoticeChange{SMS: str("+905324445566")}, account.ErrNoSuchOperator, ""},
		}
		for _, s := range steps {
			_, err := w.svc.SetNoticePrefs(ctx, actor, co.Address, s.tckn, s.ch)
			switch {
			case s.err != nil && !errors.Is(err, s.err):
				t.Errorf("%s: err %v, want %v", s.name, err, s.err)
			case s.match != "" && (err == nil || !strings.Contains(err.Error(), s.match)):
				t.Errorf("%s: err %v, want one saying %q", s.name, err, s.match)
			case s.err == nil && s.match == "" && err != nil:
				t.Errorf("%s: %v", s.name, err)
			}
		}
		targets := func() map[int64]account.NoticeTarget {
			ts, err := account.NoticeTargets(ctx, db.Q(), co.ID)
			if err != nil {
				t.Fatal(err)
			}
			m := map[int64]account.NoticeTarget{}
			for _, x := range ts {
				m[x.OperatorID] = x
			}
			return m
		}
		ts := targets()
		if len(ts) != 3 || ts[0].SMS != "+905321112233" || ts[0].Email != "muhasebe@deniz.example" {
			t.Fatalf("targets %+v", ts)
		}
		// Losing a grant stops that channel; losing the role stops all.
		if _, err := w.svc.Revoke(ctx, actor, co.Address, mainT, account.GrantSMSNotice); err != nil {
			t.Fatal(err)
		}
		if err := w.svc.RemoveOperator(ctx, actor, co.Address, subT); err != nil {
			t.Fatal(err)
		}
		ts = targets()
		if len(ts) != 2 {
			t.Fatalf("after revoke and removal: %+v", ts)
		}
		for id, x := range ts {
			if id != 0 && (x.SMS != "" || x.Email != "zeynep@deniz.example") {
				t.Fatalf("main operator without sms-notice: %+v", x)
			}
		}
		// Clearing both channels removes the row.
		if _, err := w.svc.SetNoticePrefs(ctx, actor, co.Address, "", account.NoticeChange{SMS: str(""), Email: str("")}); err != nil {
			t.Fatal(err)
		}
		ps, err := w.svc.NoticePrefsOf(ctx, co.Address)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.OperatorID == 0 {
				t.Fatalf("owner's preferences still there: %+v", p)
			}
		}
		// The audit trail names the change with masked values only.
		var details string
		rows, err := db.Q().Query(ctx, `SELECT detail FROM audit WHERE action = 'account.notices'`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var d string
			rows.Scan(&d)
			details += d + "\n"
		}
		rows.Close()
		if !strings.Contains(details, "+90********33") || strings.Contains(details, "1112233") || strings.Contains(details, "muhasebe") {
			t.Fatalf("audit details:\n%s", details)
		}
	})
}
