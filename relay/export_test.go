package relay

// IdleSessions counts the relay sessions the transport keeps open, for
// tests.
func (t *Transport) IdleSessions() int {
	t.pool.mu.Lock()
	defer t.pool.mu.Unlock()
	n := 0
	for _, l := range t.pool.idle {
		n += len(l)
	}
	return n
}
