package mailbox_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
)

func TestMessageStatus(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		mb := w.Node.Mailbox
		ayse, mehmet, zehra, ali := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk"), w.Person("Zehra", "Ak"), w.Person("Ali", "Kaya")
		nobody := "nobody.here@hs01.kep.tr"
		to := []string{mehmet.Account.Address, zehra.Account.Address, nobody}
		msg := submit(t, w, ayse, signedMessage(t, ayse, "standart", to...), "standart", to...)
		byID := strconv.FormatInt(msg.ID, 10)

		// Before delivery every recipient is accepted, with the 10 for the message.
		st, err := mb.MessageStatus(ctx, &account.Principal{Account: ayse.Account}, byID)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Recipients) != 3 || len(st.Evidence) != 1 || st.Evidence[0].Code != evidence.Accepted {
			t.Fatalf("before delivery: %+v", st)
		}
		for _, r := range st.Recipients {
			if r.State != mailbox.StateAccepted || !r.Local && r.Address != nobody {
				t.Fatalf("before delivery %s: %s", r.Address, r.State)
			}
		}
		if _, err := mb.DeliverQueued(ctx, 100); err != nil {
			t.Fatal(err)
		}
		inbox, _ := mailbox.GetFolder(ctx, w.Node.DB.Q(), mehmet.Account.ID, mailbox.Inbox)
		ms, _ := mailbox.ListMessages(ctx, w.Node.DB.Q(), inbox.ID)
		if err := mb.MarkRead(ctx, &account.Principal{Account: w.Refresh(mehmet.Account)}, ms[0]); err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name string
			p    *account.Principal
			ref  string
			want map[string]mailbox.RecipientState // nil: not found
		}{
			{"sender by number", &account.Principal{Account: ayse.Account}, byID,
				map[string]mailbox.RecipientState{mehmet.Account.Address: mailbox.StateRead, zehra.Account.Address: mailbox.StateDelivered, nobody: mailbox.StateFailed}},
			{"sender by iletiID", &account.Principal{Account: ayse.Account}, msg.IletiID,
				map[string]mailbox.RecipientState{mehmet.Account.Address: mailbox.StateRead, zehra.Account.Address: mailbox.StateDelivered, nobody: mailbox.StateFailed}},
			{"staff", &account.Principal{Staff: "test"}, byID,
				map[string]mailbox.RecipientState{mehmet.Account.Address: mailbox.StateRead, zehra.Account.Address: mailbox.StateDelivered, nobody: mailbox.StateFailed}},
			{"a recipient sees only itself", &account.Principal{Account: zehra.Account}, byID,
				map[string]mailbox.RecipientState{zehra.Account.Address: mailbox.StateDelivered}},
			{"a stranger", &account.Principal{Account: ali.Account}, byID, nil},
			{"no such message", &account.Principal{Account: ayse.Account}, "999999", nil},
			{"no such Message-ID", &account.Principal{Account: ayse.Account}, "<nothing@here>", nil},
		}
		for _, tc := range tests {
			st, err := mb.MessageStatus(ctx, tc.p, tc.ref)
			if tc.want == nil {
				var ref *mailbox.Refusal
				if !errors.As(err, &ref) || ref.Kind != mailbox.NotFound {
					t.Errorf("%s: %v, want not found", tc.name, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			got := map[string]mailbox.RecipientState{}
			for _, r := range st.Recipients {
				got[r.Address] = r.State
				if len(r.Evidence) == 0 {
					t.Errorf("%s: %s has no evidence", tc.name, r.Address)
				}
				if r.State == mailbox.StateFailed && r.Reason == "" {
					t.Errorf("%s: %s failed without a reason", tc.name, r.Address)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
			for a, s := range tc.want {
				if got[a] != s {
					t.Errorf("%s: %s is %q, want %q", tc.name, a, got[a], s)
				}
			}
		}
	})
}
