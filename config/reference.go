package config

import (
	"bytes"
	"fmt"
	"strings"
)

// The key tables of docs/configuration.md sit between these markers, one
// pair per section; Reference rewrites what is between them.
const (
	refBegin = "<!-- generated from config/keys.go by `go generate ./config/`: [%s] -->"
	refEnd   = "<!-- end of generated table -->"
)

// Reference returns doc (docs/configuration.md) with the key table of every
// section regenerated from KeyTable, with the defaults of Default for a
// provider "<id>" at "<domain>". The prose around the tables is kept. Every
// section must have its markers in doc.
func Reference(doc []byte) ([]byte, error) {
	out := doc
	for _, s := range Sections {
		begin := []byte(fmt.Sprintf(refBegin, s.Name))
		i := bytes.Index(out, begin)
		if i < 0 {
			return nil, fmt.Errorf("docs/configuration.md has no marker %s: add it (and %s) where the table of [%s] goes", begin, refEnd, s.Name)
		}
		start := i + len(begin)
		j := bytes.Index(out[start:], []byte(refEnd))
		if j < 0 {
			return nil, fmt.Errorf("docs/configuration.md: no %s after the marker of [%s]", refEnd, s.Name)
		}
		table, err := sectionTable(s.Name)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		b.Write(out[:start])
		b.WriteString("\n" + table)
		b.Write(out[start+j:])
		out = b.Bytes()
	}
	return out, nil
}

func sectionTable(section string) (string, error) {
	d := Default("", "<id>", "<domain>")
	var b strings.Builder
	b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
	n := 0
	for _, k := range KeyTable {
		if k.Section != section {
			continue
		}
		n++
		def := k.Default
		if def == "" {
			v, err := d.value(k)
			if err != nil {
				return "", err
			}
			def = docValue(v)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Name, k.Type, def+k.Note, strings.ReplaceAll(k.Doc, "|", `\|`))
	}
	if n == 0 {
		return "", fmt.Errorf("config: section [%s] has no keys", section)
	}
	return b.String(), nil
}

// docValue shows a TOML value in the doc: strings without their quotes
// unless empty, everything else as written in the file.
func docValue(v string) string {
	if len(v) > 2 && v[0] == '"' && !strings.ContainsAny(v[1:len(v)-1], `"\`) {
		v = v[1 : len(v)-1]
	}
	return "`" + v + "`"
}
