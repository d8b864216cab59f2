package imapd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kephs/kep/provider/providertest"
)

func TestSearch(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse, zehra, mehmet := w.Person("Ayşe", "Can"), w.Person("Zehra", "Can"), w.Person("Mehmet", "Can")
		send(t, w, ayse, "=?utf-8?q?=C3=96deme_emri?=", mehmet.Account.Address) // 1
		send(t, w, zehra, "Kira", mehmet.Account.Address)                       // 2
		send(t, w, ayse, "Fatura", mehmet.Account.Address)                      // 3
		c := e.login(mehmet.Account.Address, mehmet.Password)
		mustSelect(t, c, "INBOX", false)
		if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, imap.FlagSeen}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		today := time.Now().In(w.Node.Mailbox.Policy.Location)
		day := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
		uids := func(cr *imap.SearchCriteria) []imap.UID {
			t.Helper()
			d, err := c.UIDSearch(cr, nil).Wait()
			if err != nil {
				t.Fatalf("search %+v: %v", cr, err)
			}
			return d.AllUIDs()
		}
		cases := []struct {
			name string
			cr   *imap.SearchCriteria
			want []imap.UID
		}{
			{"all", &imap.SearchCriteria{}, []imap.UID{1, 2, 3}},
			{"flagged", &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, []imap.UID{2}},
			{"unseen", &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []imap.UID{1, 3}},
			{"subject decoded", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "ödeme"}}}, []imap.UID{1}},
			{"from", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: zehra.Account.Address}}}, []imap.UID{2}},
			{"header present", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-TR-REM-iletiTip", Value: ""}}}, []imap.UID{1, 2, 3}},
			{"body, Turkish case", &imap.SearchCriteria{Body: []string{"ZEYTİNYAĞI"}}, []imap.UID{1, 2, 3}},
			{"body not header", &imap.SearchCriteria{Body: []string{"x-tr-rem-iletitip: STANDART"}}, []imap.UID{1, 2, 3}}, // the original's header is in the envelope's body
			{"body, no match", &imap.SearchCriteria{Body: []string{"Received:"}}, nil},
			{"text", &imap.SearchCriteria{Text: []string{"kira"}}, []imap.UID{2}},
			{"body intro", &imap.SearchCriteria{Body: []string{"kayıtlı elektronik posta"}}, []imap.UID{1, 2, 3}},
			{"larger", &imap.SearchCriteria{Larger: 100}, []imap.UID{1, 2, 3}},
			{"smaller", &imap.SearchCriteria{Smaller: 100}, nil},
			{"since today", &imap.SearchCriteria{Since: day}, []imap.UID{1, 2, 3}},
			{"before today", &imap.SearchCriteria{Before: day}, nil},
			{"on today", &imap.SearchCriteria{Since: day, Before: day.Add(24 * time.Hour)}, []imap.UID{1, 2, 3}},
			{"sent before tomorrow", &imap.SearchCriteria{SentBefore: day.Add(48 * time.Hour)}, []imap.UID{1, 2, 3}},
			{"not", &imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagFlagged}}}}, []imap.UID{1, 3}},
			{"or", &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{UID: []imap.UIDSet{imap.UIDSetNum(1)}}, {Flag: []imap.Flag{imap.FlagFlagged}}}}}, []imap.UID{1, 2}},
			{"uid *", &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 0, Stop: 0}}}}, []imap.UID{3}},
			{"uid 2:*", &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 2, Stop: 0}}}}, []imap.UID{2, 3}},
			{"uid 99:*", &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 99, Stop: 0}}}}, []imap.UID{3}},
			{"seq *", &imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 0, Stop: 0}}}}, []imap.UID{3}},
		}
		for _, tc := range cases {
			if got := uids(tc.cr); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
		// Sequence numbers, and ESEARCH (RFC 4731) with MIN/MAX/COUNT.
		d, err := c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
		if err != nil || d.Min != 1 || d.Max != 3 || d.Count != 2 {
			t.Fatalf("ESEARCH: %+v %v", d, err)
		}
		// SEARCHRES (RFC 5182): SAVE, then $ (imapclient does not send
		// RETURN (SAVE), so by hand).
		r := e.raw()
		r.cmd("a", fmt.Sprintf("LOGIN %q %q", mehmet.Account.Address, mehmet.Password))
		r.cmd("b", "SELECT INBOX")
		if u, st := r.cmd("c", "SEARCH RETURN (SAVE) FLAGGED"); !strings.HasPrefix(st, "c OK") {
			t.Fatalf("SEARCH RETURN (SAVE): %q %q", u, st)
		}
		if u, st := r.cmd("d", "FETCH $ (UID)"); !strings.HasPrefix(st, "d OK") || len(u) != 1 || u[0] != "* 2 FETCH (UID 2)" {
			t.Fatalf("FETCH $: %q %q", u, st)
		}
		// Searching is not reading.
		if st, _ := c.Status("INBOX", &imap.StatusOptions{NumUnseen: true}).Wait(); st == nil || *st.NumUnseen != 2 {
			t.Fatalf("unseen after search: %+v", st)
		}
	})
}
