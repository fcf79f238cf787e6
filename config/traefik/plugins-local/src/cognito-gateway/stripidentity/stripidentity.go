// Package stripidentity is a Traefik local plugin (middleware) that removes request headers by
// name or by prefix. Names are compared in lower case with `_` read as `-`, the way CGI, WSGI,
// PHP and Rack servers read them: X_Remote_User is Remote-User to such an app. Traefik's own
// headers middleware removes exact names only. See docs/deployment.md (Traefik).
package stripidentity

import (
	"context"
	"net/http"
	"strings"
)

// Config lists the header names and the name prefixes to remove.
type Config struct {
	Names    []string `json:"names,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
}

// CreateConfig returns an empty configuration.
func CreateConfig() *Config {
	return &Config{}
}

type stripIdentity struct {
	next     http.Handler
	names    map[string]bool
	prefixes []string
}

func normalized(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// New builds the middleware.
func New(_ context.Context, next http.Handler, config *Config, _ string) (http.Handler, error) {
	s := &stripIdentity{next: next, names: map[string]bool{}}
	for _, name := range config.Names {
		s.names[normalized(name)] = true
	}
	for _, prefix := range config.Prefixes {
		s.prefixes = append(s.prefixes, normalized(prefix))
	}
	return s, nil
}

func (s *stripIdentity) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	for name := range req.Header {
		if s.matches(normalized(name)) {
			delete(req.Header, name)
		}
	}
	s.next.ServeHTTP(rw, req)
}

func (s *stripIdentity) matches(name string) bool {
	if s.names[name] {
		return true
	}
	for _, prefix := range s.prefixes {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}
