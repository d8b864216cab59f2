package mailbox

import "sync"

// Hub tells listeners (IMAP IDLE, the web's live view) that an account's
// folders changed. Notifications carry no data: listeners re-read.
type Hub struct {
	mu   sync.Mutex
	subs map[int64]map[chan int64]struct{} // account id → listeners; a listener receives folder ids
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[int64]map[chan int64]struct{}{}} }

// Subscribe returns a channel that receives the id of each folder of the
// account that changes, and a function to stop listening. Slow listeners
// miss notifications rather than block delivery.
func (h *Hub) Subscribe(accountID int64) (<-chan int64, func()) {
	ch := make(chan int64, 16)
	h.mu.Lock()
	if h.subs[accountID] == nil {
		h.subs[accountID] = map[chan int64]struct{}{}
	}
	h.subs[accountID][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[accountID], ch)
		if len(h.subs[accountID]) == 0 {
			delete(h.subs, accountID)
		}
		h.mu.Unlock()
	}
}

// Notify tells the account's listeners that a folder changed.
func (h *Hub) Notify(accountID, folderID int64) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[accountID] {
		select {
		case ch <- folderID:
		default:
		}
	}
}
