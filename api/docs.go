package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"sort"
	"strings"
)

// OpenAPI is the API's OpenAPI 3.1 document, kept in the repository
// (api/openapi.json) and served at /api/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// openAPI: GET /api/openapi.json.
func (s *Server) openAPI(c *call) error {
	c.w.Header().Set("Cache-Control", "public, max-age=300")
	return c.bytes("application/json", "", OpenAPI)
}

// doc is the part of the OpenAPI document the page shows.
type doc struct {
	Info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Paths map[string]map[string]operation `json:"paths"`
}

type operation struct {
	Summary     string `json:"summary"`
	Description string `json:"description"`
	Retrieval   bool   `json:"x-kep-retrieval"`
	Security    *[]any `json:"security"`
	Parameters  []struct {
		Name        string `json:"name"`
		In          string `json:"in"`
		Required    bool   `json:"required"`
		Description string `json:"description"`
	} `json:"parameters"`
	Responses map[string]struct {
		Description string `json:"description"`
	} `json:"responses"`
}

// parseDoc reads the embedded document.
func parseDoc() (*doc, error) {
	var d doc
	err := json.Unmarshal(OpenAPI, &d)
	return &d, err
}

type pageOp struct {
	Method, Path string
	operation
	Public bool
	Codes  []string
}

// docStyle is the page's stylesheet. It is inline, allowed by its hash
// (CSP Level 3 §8.4, hash-source) rather than by 'unsafe-inline', so that
// nothing else inline runs or styles the page.
const docStyle = `
body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;color:#222}
code,pre{font-family:ui-monospace,monospace;font-size:.9em}
section{border-top:1px solid #ccc;padding:.5rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:bold}
.tag{font-size:.8em;padding:0 .4em;border-radius:.3em;background:#fde2c5;margin-left:.5em}
.pub{background:#d8f0d8}
table{border-collapse:collapse}td,th{padding:.1rem .6rem;text-align:left;vertical-align:top}
`

// docCSP is the page's Content-Security-Policy: its one stylesheet, nothing
// else, and no framing.
var docCSP = func() string {
	sum := sha256.Sum256([]byte(docStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Info.Title}} {{.Info.Version}}</title>
<style>` + docStyle + `</style></head><body>
<h1>{{.Info.Title}} <small>{{.Info.Version}}</small></h1>
<p>{{.Info.Description}}</p>
<p>The machine-readable document: <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI 3.1).
Calls marked <span class="tag">retrieval</span> count as the recipient reading the message: they issue evidence 60, as an IMAP fetch does.</p>
<nav><ul>{{range .Ops}}<li><a href="#{{.Method}}{{.Path}}"><code>{{.Method}} {{.Path}}</code></a> {{.Summary}}</li>{{end}}</ul></nav>
{{range .Ops}}<section id="{{.Method}}{{.Path}}">
<h2><span class="m">{{.Method}}</span><code>{{.Path}}</code>{{if .Retrieval}}<span class="tag">retrieval</span>{{end}}{{if .Public}}<span class="tag pub">no token</span>{{end}}</h2>
<p><strong>{{.Summary}}</strong></p>{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Parameters}}<table><tr><th>parameter</th><th>in</th><th></th></tr>{{range .Parameters}}<tr><td><code>{{.Name}}</code>{{if .Required}} *{{end}}</td><td>{{.In}}</td><td>{{.Description}}</td></tr>{{end}}</table>{{end}}
<p>Answers: {{range $i, $c := .Codes}}{{if $i}}, {{end}}<code>{{$c}}</code>{{end}}</p>
</section>{{end}}
</body></html>
`))

// docPage: GET /api/ — the document as a page, rendered on the server.
func (s *Server) docPage(c *call) error {
	d, err := parseDoc()
	if err != nil {
		return err
	}
	var ops []pageOp
	for path, ms := range d.Paths {
		for m, op := range ms {
			po := pageOp{Method: strings.ToUpper(m), Path: path, operation: op, Public: op.Security != nil && len(*op.Security) == 0}
			for code := range op.Responses {
				po.Codes = append(po.Codes, code)
			}
			sort.Strings(po.Codes)
			ops = append(ops, po)
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.Header().Set("Content-Security-Policy", docCSP)
	return pageTmpl.Execute(c.w, map[string]any{"Info": d.Info, "Ops": ops})
}
