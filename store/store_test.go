package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

func TestAddressReservedForever(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		q := db.Q()
		now := time.Now()
		if err := store.IssueAddress(ctx, q, "ayse.yilmaz@hs01.kep.tr", "TCKN:10000000146", now); err != nil {
			t.Fatal(err)
		}
		err := store.IssueAddress(ctx, q, "ayse.yilmaz@hs01.kep.tr", "TCKN:20000000046", now)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second issue: got %v, want ErrConflict", err)
		}
		// Raw SQL cannot free or reassign it either.
		if _, err := q.Exec(ctx, `DELETE FROM addresses WHERE address = ?`, "ayse.yilmaz@hs01.kep.tr"); !errors.Is(err, store.ErrAppendOnly) {
			t.Fatalf("delete: got %v, want ErrAppendOnly", err)
		}
		if _, err := q.Exec(ctx, `UPDATE addresses SET owner_id = 'TCKN:20000000046'`); !errors.Is(err, store.ErrAppendOnly) {
			t.Fatalf("update: got %v, want ErrAppendOnly", err)
		}
		// An account for another identity cannot take the address.
		a := &store.Account{Address: "ayse.yilmaz@hs01.kep.tr", Kind: "person", Capability: "receive-only", OwnerID: "TCKN:20000000046",
			OwnerName: "X", Status: "applied", QuotaBytes: 1, CreatedAt: now}
		if err := store.InsertAccount(ctx, q, a); !errors.Is(err, store.ErrImmutable) {
			t.Fatalf("insert for other identity: got %v, want ErrImmutable", err)
		}
		a.OwnerID = "TCKN:10000000146"
		if err := store.InsertAccount(ctx, q, a); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{
			`UPDATE accounts SET owner_id = 'TCKN:20000000046' WHERE id = ?`,
			`UPDATE accounts SET address = 'x@hs01.kep.tr' WHERE id = ?`,
		} {
			if _, err := q.Exec(ctx, s, a.ID); !errors.Is(err, store.ErrImmutable) {
				t.Fatalf("%s: got %v, want ErrImmutable", s, err)
			}
		}
		if _, err := q.Exec(ctx, `DELETE FROM accounts WHERE id = ?`, a.ID); !errors.Is(err, store.ErrAppendOnly) {
			t.Fatalf("delete account: got %v, want ErrAppendOnly", err)
		}
	})
}

func TestAuditAppendOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		q := db.Q()
		if err := store.Audit(ctx, q, &store.AuditRecord{At: time.Now(), Actor: "cli", Action: "test", Target: "t"}); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Exec(ctx, `UPDATE audit SET actor = 'x'`); !errors.Is(err, store.ErrAppendOnly) {
			t.Fatalf("got %v", err)
		}
		if _, err := q.Exec(ctx, `DELETE FROM audit`); !errors.Is(err, store.ErrAppendOnly) {
			t.Fatalf("got %v", err)
		}
		recs, err := store.ListAudit(ctx, q, "t", 10)
		if err != nil || len(recs) != 1 || recs[0].Action != "test" {
			t.Fatalf("ListAudit = %v, %v", recs, err)
		}
	})
}

func TestInTxRollsBack(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := store.IssueAddress(ctx, tx, "a@hs01.kep.tr", "TCKN:10000000146", time.Now()); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if taken, err := store.AddressTaken(ctx, db.Q(), "a@hs01.kep.tr"); err != nil || taken {
			t.Fatalf("taken=%v err=%v after rollback", taken, err)
		}
	})
}

func TestRebind(t *testing.T) {
	db := &store.DB{Dialect: store.Postgres}
	got := db.Rebind(`SELECT a FROM t WHERE x = ? AND y = '?' AND z = ?`)
	want := `SELECT a FROM t WHERE x = $1 AND y = '?' AND z = $2`
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestReopenIsIdempotentMigration(t *testing.T) {
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			for i := 0; i < 2; i++ {
				db, err := store.Open(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
		})
	}
}
