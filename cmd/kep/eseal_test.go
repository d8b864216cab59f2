package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pki"
)

// TestESealOnSoftHSM is issue 13's test: a message sealed with the
// company's P-384 e-seal, whose key is on a SoftHSM2 token, is accepted and
// delivered, and its acceptance and delivery evidence verify with kep verify
// and with xmlsec1; the acceptance evidence says an e-seal sealed it.
func TestESealOnSoftHSM(t *testing.T) {
	testtool.Require(t, testtool.SoftHSM2)
	testtool.Require(t, testtool.PKCS11Tool)
	xmlsec := testtool.Require(t, testtool.XMLSec1OpenSSL)
	cli := newLogCLI(t)
	dir := filepath.Join(t.TempDir(), "world")
	ctx := context.Background()
	w, err := demo.Start(ctx, dir, demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	info, err := demo.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	deniz, _ := info.Account("deniz")
	if deniz.ESeal == nil || deniz.ESeal.Storage != "softhsm" || deniz.ESeal.PKCS11 == nil {
		t.Fatalf("the company's e-seal is not on SoftHSM: %+v", deniz.ESeal)
	}
	mehmet, _ := info.Account("mehmet")
	orig := filepath.Join(t.TempDir(), "sealed.eml")
	code, out, errs := cli.run("send", "--demo", dir, "--as", "zeynep", "--eseal", "--to", mehmet.Address,
		"--subject", "Fatura", "--body", "Mali mühürlü ileti", "--save", orig)
	if code != 0 {
		t.Fatalf("kep send --eseal: exit %d: %s%s", code, out, errs)
	}
	m := regexp.MustCompile(`accepted: evidence (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("kep send: %q", out)
	}
	ids := map[int]string{10: m[1]}
	// Delivered: evidence 40 for the same message.
	deadline := time.Now().Add(20 * time.Second)
	for ids[40] == "" {
		rows, err := w.Nodes[0].DB.Q().Query(ctx, `SELECT e2.id FROM evidence e1 JOIN evidence e2 ON e2.message_id = e1.message_id WHERE e1.id = ? AND e2.code = 40`, ids[10])
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			rows.Scan(&id)
			ids[40] = id
		}
		rows.Close()
		if ids[40] == "" && time.Now().After(deadline) {
			t.Fatal("the sealed message was not delivered (no evidence 40)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.Nodes[0].Checkpoint(ctx)
	for _, c := range []int{10, 40} {
		bundle := filepath.Join(t.TempDir(), "delil.zip")
		if code, out, errs := cli.run("evidence", "bundle", "--demo", dir, "--id", ids[c], "--out", bundle); code != 0 {
			t.Fatalf("kep evidence bundle %d: exit %d: %s%s", c, code, out, errs)
		}
		args := []string{"verify", bundle, "--anchors", info.Anchors.Dir}
		if c == 10 {
			args = append(args, "--original", orig)
		}
		if code, out, errs := cli.run(args...); code != 0 {
			t.Fatalf("kep verify of evidence %d: exit %d: %s%s", c, code, out, errs)
		}
		xml := zipMember(t, bundle, "evidence.xml")
		if c == 10 && !strings.Contains(xml, `Name="eSeal">VKN:`+strings.TrimPrefix(deniz.Identity, "VKN:")+"<") {
			t.Errorf("the acceptance evidence does not record the e-seal:\n%s", xml)
		}
		doc := filepath.Join(t.TempDir(), "delil.xml")
		os.WriteFile(doc, []byte(xml), 0o644)
		if out, err := exec.Command(xmlsec, "--verify", "--trusted-pem", info.Anchors.ProviderCAs[0], doc).CombinedOutput(); err != nil {
			t.Fatalf("xmlsec1 on evidence %d: %v\n%s", c, err, out)
		}
	}
	// To another provider: hs02's reception point binds the seal to the
	// company's VKN as well, accepts (20) and delivers (40).
	elif, _ := info.Account("elif")
	if code, out, errs := cli.run("send", "--demo", dir, "--as", "zeynep", "--eseal", "--to", elif.Address, "--body", "hs02'ye mühürlü"); code != 0 {
		t.Fatalf("kep send --eseal to hs02: exit %d: %s%s", code, out, errs)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		var got []string
		rows, err := w.Nodes[0].DB.Q().Query(ctx, `SELECT code FROM foreign_evidence ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c string
			rows.Scan(&c)
			got = append(got, c)
		}
		rows.Close()
		if g := strings.Join(got, " "); strings.Contains(g, "20") && strings.Contains(g, "40") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hs02 did not accept and deliver the sealed message: evidence back %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Another company's e-seal, from the same CA: refused with the reason.
	other := filepath.Join(t.TempDir(), "other")
	if code, out, errs := cli.run("cert", "issue", "--demo", dir, "--eseal", "--vkn", "4540536920", "--org", "Başka A.Ş.", "--out", other); code != 0 {
		t.Fatalf("kep cert issue --eseal: exit %d: %s%s", code, out, errs)
	}
	code, out, errs = cli.run("send", "--demo", dir, "--as", "zeynep", "--cert", other+".crt", "--key", other+".key", "--to", mehmet.Address, "--body", "x")
	if code != 1 || !strings.Contains(errs, "e-seal certificate is bound to VKN") {
		t.Fatalf("another company's e-seal: exit %d: %s%s", code, out, errs)
	}
	t.Run("kep signer", func(t *testing.T) { testSignerAgent(t, cli, dir, info) })
}

// signerSession runs `kep signer --demo DIR` on a free port, its terminal a
// pipe, and returns its address and the pipe.
func signerSession(t *testing.T, cli *logCLI, dir string) (string, io.Writer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(cli.bin, "signer", "--demo", dir, "--port", strconv.Itoa(port))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, "kep signer: http://127.0.0.1:") {
		t.Fatalf("kep signer: %q %v", line, err)
	}
	go io.Copy(io.Discard, r) // the prompts
	return fmt.Sprintf("http://127.0.0.1:%d", port), stdin
}

// testSignerAgent: the web mail's origin reaches `kep signer`, another
// origin does not; the user's "n" refuses, "y" signs with the company's
// e-seal on SoftHSM, and the provider accepts what was signed.
func testSignerAgent(t *testing.T, cli *logCLI, dir string, info *demo.Info) {
	addr, term := signerSession(t, cli, dir)
	web := "https://" + info.Providers[0].Endpoints.HTTPS
	deniz, _ := info.Account("deniz")
	mehmet, _ := info.Account("mehmet")
	msg, _ := json.Marshal(client.Message{From: deniz.Address, To: []string{mehmet.Address}, Subject: "Ekstre", Body: "Kasım ekstresi", Date: time.Now()})
	post := func(org, answer string) (int, map[string]string) {
		req, _ := http.NewRequest("POST", addr+"/v1/sign", bytes.NewReader(msg))
		req.Header.Set("Origin", org)
		req.Header.Set("Content-Type", "application/json")
		if answer != "" {
			go io.WriteString(term, answer+"\n")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r map[string]string
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r
	}
	if code, r := post("https://evil.example", ""); code != 403 || r["error"] == "" {
		t.Fatalf("another origin: %d %v", code, r)
	}
	if code, r := post(web, "n"); code != 403 || r["signed"] != "" {
		t.Fatalf("after n: %d %v", code, r)
	}
	code, r := post(web, "y")
	if code != 200 || r["signed"] == "" {
		t.Fatalf("after y: %d %v", code, r)
	}
	signed, _ := base64.StdEncoding.DecodeString(r["signed"])
	_, op := info.Account("zeynep")
	roots := x509.NewCertPool()
	cas, _ := pki.LoadCertsPEM(info.Providers[0].CA)
	roots.AddCert(cas[0])
	c, err := client.Dial(client.Submission{Addr: info.Providers[0].Endpoints.Submission, Username: op.Username, Password: op.Password,
		TLS: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Send(deniz.Address, []string{mehmet.Address}, signed)
	if err != nil || !res.Accepted {
		t.Fatalf("the provider refused what kep signer signed: %+v %v", res, err)
	}
}

func zipMember(t *testing.T, path, name string) string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := zr.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
