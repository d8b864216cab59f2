package tlog_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/tlog"
)

// TestKeySet: a checkpoint names the key that signed it, and a key set of
// the current and retired keys opens checkpoints of either (issue 9.3).
func TestKeySet(t *testing.T) {
	const origin = "hs01.kep.tr/log"
	oldS, oldV, err := tlog.GenerateLogKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	newS, newV, err := tlog.GenerateLogKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	_, otherV, err := tlog.GenerateLogKey("hs02.kep.tr/log")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(skey string) []byte {
		s, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		b, err := note.Sign(&note.Note{Text: string(tlog.FormatCheckpoint(origin, 5, tlog.Hash{1}))}, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oldCP, newCP := sign(oldS), sign(newS)
	for _, c := range []struct {
		name   string
		cp     []byte
		set    string
		signer string // the key KeyFor finds; "" when none
		ok     bool
	}{
		{"old checkpoint, old key", oldCP, oldV, oldV, true},
		{"old checkpoint, set", oldCP, newV + "\n" + oldV + "\n", oldV, true},
		{"new checkpoint, set", newCP, newV + "\n" + oldV, newV, true},
		{"new checkpoint, old key only", newCP, oldV, "", false},
		{"set with another log's key", oldCP, oldV + "\n" + otherV, oldV, false},
		{"empty set", oldCP, "\n", "", false},
	} {
		_, size, _, err := tlog.OpenCheckpoint(c.cp, c.set)
		if (err == nil) != c.ok || c.ok && size != 5 {
			t.Errorf("%s: OpenCheckpoint = %d, %v; want ok %v", c.name, size, err, c.ok)
		}
		k, err := tlog.KeyFor(c.cp, c.set)
		if k != c.signer || (err == nil) != (c.signer != "") {
			t.Errorf("%s: KeyFor = %q, %v; want %q", c.name, k, err, c.signer)
		}
	}

	// The key file after a rotation: the signer, then the retired keys.
	dir := t.TempDir()
	path := filepath.Join(dir, "log.key")
	for _, c := range []struct {
		name, file string
		set        []string
		bad        string
	}{
		{"signer alone", newS + "\n", []string{newV}, ""},
		{"signer and a retired key", newS + "\n" + oldV + "\n", []string{newV, oldV}, ""},
		{"retired key of another log", newS + "\n" + otherV + "\n", nil, "retired log key named"},
		{"retired line not a key", newS + "\nnonsense\n", nil, "not a verifier key"},
	} {
		if err := os.WriteFile(path, []byte(c.file), 0o600); err != nil {
			t.Fatal(err)
		}
		_, set, err := tlog.LoadSigner(path)
		if c.bad != "" {
			if err == nil || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("%s: %v, want an error saying %q", c.name, err, c.bad)
			}
			continue
		}
		if err != nil || strings.Join(tlog.SplitKeys(set), ",") != strings.Join(c.set, ",") {
			t.Errorf("%s: key set %q, %v; want %q", c.name, set, err, c.set)
		}
	}
}

// TestAuditAfterRotation: checkpoints signed before and after a log key
// rotation are sound to an audit given the key set (what `kep log verify`
// reads from keys.log_key), and those of the old key are named as problems
// when only the new key is given.
func TestAuditAfterRotation(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		aw := newAuditWorld(t, w)
		n := w.Node
		skey, vkey, err := tlog.GenerateLogKey(n.Config.Log.Origin)
		if err != nil {
			t.Fatal(err)
		}
		if n.Checkpointer.Signer, err = note.NewSigner(skey); err != nil {
			t.Fatal(err)
		}
		oldKey := n.LogKey
		cp, err := n.Checkpointer.Catchup(ctx, n.Log.Size()) // the 7 uncovered evidences, under the new key
		if err != nil || cp == nil {
			t.Fatalf("checkpoint with the new key: %v", err)
		}
		if k, err := tlog.KeyFor(cp.Note, vkey+"\n"+oldKey); err != nil || k != vkey {
			t.Fatalf("the new checkpoint names %q, %v; want the new key", k, err)
		}
		for _, c := range []struct {
			name     string
			set      string
			problems bool
		}{
			{"key set", vkey + "\n" + oldKey, false},
			{"new key only", vkey, true},
		} {
			n.LogKey = c.set
			sum, got := aw.audit(t, 1000, nil)
			if (len(got) > 0) != c.problems || sum.Checkpoints != 4 {
				t.Errorf("%s: %d checkpoints checked, problems %v", c.name, sum.Checkpoints, got)
			}
		}
	})
}
