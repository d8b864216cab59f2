package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestRoutesMatchDocument walks the served routes and the OpenAPI
// document: every served route is documented, every documented one served.
func TestRoutesMatchDocument(t *testing.T) {
	d, err := parseDoc()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var raw struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(OpenAPI, &raw); err != nil || raw.OpenAPI != "3.1.0" {
		t.Fatalf("not an OpenAPI 3.1 document: %q %v", raw.OpenAPI, err)
	}
	documented := map[string]bool{}
	for path, ops := range d.Paths {
		for m, op := range ops {
			documented[strings.ToUpper(m)+" "+path] = true
			if op.Summary == "" {
				t.Errorf("%s %s has no summary", m, path)
			}
			if _, ok := op.Responses["200"]; !ok && !slices.ContainsFunc([]string{"201", "204"}, func(c string) bool { _, ok := op.Responses[c]; return ok }) {
				t.Errorf("%s %s documents no success", m, path)
			}
		}
	}
	s := &Server{}
	served := map[string]bool{}
	for _, rt := range s.routes() {
		key := rt.Method + " " + strings.Replace(rt.Path, "{$}", "", 1)
		served[key] = true
		if !documented[key] {
			t.Errorf("served but not documented: %s", key)
		}
		op := d.Paths[strings.Replace(rt.Path, "{$}", "", 1)][strings.ToLower(rt.Method)]
		if public := op.Security != nil && len(*op.Security) == 0; public != rt.Public {
			t.Errorf("%s: served public=%v, documented public=%v", key, rt.Public, public)
		}
	}
	for key := range documented {
		if !served[key] {
			t.Errorf("documented but not served: %s", key)
		}
	}
	// The calls that are retrievals say so.
	for _, key := range []string{"GET /api/v1/messages/{ref}/original", "GET /api/v1/accounts/{address}/folders/{folder}/messages/{uid}/content"} {
		m, p, _ := strings.Cut(key, " ")
		if !d.Paths[p][strings.ToLower(m)].Retrieval {
			t.Errorf("%s is a retrieval and the document does not say so (x-kep-retrieval)", key)
		}
	}
	// The page renders from the document, with every route.
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, rt := range s.routes() {
		if !strings.Contains(rec.Body.String(), "<code>"+strings.Replace(rt.Path, "{$}", "", 1)+"</code>") {
			t.Errorf("the page lacks %s", rt.Path)
		}
	}
	if strings.Contains(rec.Body.String(), "<script") || strings.Contains(rec.Body.String(), "https://") {
		t.Error("the page loads something from elsewhere")
	}
}
