package account

import (
	"sync"
	"testing"
	"time"
)

// TestVerifiedCacheTogether: sessions that log in at the same moment with
// the same password share one hashing, and each gets the right answer.
func TestVerifiedCacheTogether(t *testing.T) {
	hash, err := HashPassword("doğru parola")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{{"doğru parola", true}, {"yanlış parola", false}} {
		var c verifiedCache
		var wg sync.WaitGroup
		got := make([]bool, 16)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], _ = c.check("ayse", tc.password, hash, time.Now())
			}()
		}
		wg.Wait()
		for i, g := range got {
			if g != tc.want {
				t.Fatalf("%q: check %d said %v", tc.password, i, g)
			}
		}
		if len(c.flight) != 0 {
			t.Fatalf("%d checks left in flight", len(c.flight))
		}
	}
}
