package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Render writes the configuration as the commented TOML file that
// `kep init` writes: every key of KeyTable, in order, under its comment.
func (c *Config) Render() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# KEP provider configuration (written by kep init).\n" +
		"# Relative paths are taken from the directory of this file.\n" +
		"# docs/configuration.md describes every key in more detail.\n")
	for _, s := range Sections {
		fmt.Fprintf(&b, "\n[%s]\n", s.Name)
		comment(&b, s.Comment)
		for _, k := range KeyTable {
			if k.Section != s.Name {
				continue
			}
			v, err := c.value(k)
			if err != nil {
				return nil, err
			}
			comment(&b, k.Comment)
			fmt.Fprintf(&b, "%s = %s\n", k.Name, v)
		}
	}
	return b.Bytes(), nil
}

func comment(b *bytes.Buffer, text string) {
	if text == "" {
		return
	}
	for _, l := range strings.Split(text, "\n") {
		b.WriteString("# " + l + "\n")
	}
}

// field finds the field of c that key k configures, by the toml tags.
func (c *Config) field(k Key) (reflect.Value, error) {
	v := reflect.ValueOf(c).Elem()
	sec, ok := byTag(v, k.Section)
	if !ok {
		return reflect.Value{}, fmt.Errorf("config: no section [%s] in Config", k.Section)
	}
	f, ok := byTag(sec, k.Name)
	if !ok {
		return reflect.Value{}, fmt.Errorf("config: no key %s.%s in Config", k.Section, k.Name)
	}
	return f, nil
}

func byTag(v reflect.Value, tag string) (reflect.Value, bool) {
	for i := 0; i < v.NumField(); i++ {
		if strings.Split(v.Type().Field(i).Tag.Get("toml"), ",")[0] == tag {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// value is the TOML form of key k's value in c.
func (c *Config) value(k Key) (string, error) {
	f, err := c.field(k)
	if err != nil {
		return "", err
	}
	return tomlValue(f)
}

func tomlValue(f reflect.Value) (string, error) {
	switch x := f.Interface().(type) {
	case Duration:
		return tomlString(shortDuration(x.Duration)), nil
	case string:
		return tomlString(x), nil
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = tomlString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	switch f.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(f.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(f.Uint(), 10), nil
	}
	return "", fmt.Errorf("config: no TOML form for %s", f.Type())
}

// shortDuration writes d as time.Duration.String does, without the zero
// units it appends: "24h", "1h30m", "2s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// tomlString quotes s as a TOML basic string (TOML v1.0.0, "String").
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
