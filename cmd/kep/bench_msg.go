package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kephs/kep/client"
)

// benchMsg is a pre-signed message cut around its Message-ID header: the
// signature covers the inner entity, so the outer header can vary per
// send without signing again.
type benchMsg struct{ header, rest []byte }

// presign signs pool messages of size bytes of text from one sender to
// one recipient.
func presign(signer *client.Signer, from, to string, size, pool int) ([]benchMsg, error) {
	msgs := make([]benchMsg, pool)
	text := make([]byte, size)
	for i := range msgs {
		rand.Read(text)
		m := &client.Message{From: from, To: []string{to}, Subject: fmt.Sprintf("bench %d", i), Body: string(base64Lines(text, size))}
		raw, err := m.Sign(signer)
		if err != nil {
			return nil, err
		}
		i1 := bytes.Index(raw, []byte("Message-ID: "))
		if i1 < 0 {
			return nil, errors.New("a signed message has no Message-ID header")
		}
		i2 := i1 + bytes.Index(raw[i1:], []byte("\r\n")) + 2
		msgs[i] = benchMsg{header: append([]byte(nil), raw[:i1]...), rest: append([]byte(nil), raw[i2:]...)}
	}
	return msgs, nil
}

// raw appends to dst the message with the Message-ID of send i of the
// run tagged tag (<bench-TAG-I@hs01.kep.tr>): the run finds its own
// messages' evidence by it.
func (m benchMsg) raw(dst []byte, tag string, i int64) []byte {
	dst = append(dst, m.header...)
	dst = append(dst, "Message-ID: <bench-"...)
	dst = append(dst, tag...)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, i, 10)
	dst = append(dst, "@hs01.kep.tr>\r\n"...)
	return append(dst, m.rest...)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports (proc(5)).
const clockTicks = 100

// procCPU is the user plus system CPU time a process has used so far, from
// /proc/PID/stat (fields 14 utime and 15 stime, proc(5)); it counts all the
// process's threads, whoever started it.
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no server process id (give --pid)")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(string(b))
}

// parseProcStatCPU reads utime+stime from the text of /proc/PID/stat. The
// command name (field 2) is in parentheses and may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseProcStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("/proc/PID/stat: too few fields")
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 and 15
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/stat: %w", err)
		}
		ticks += t
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
