package esserver

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// Auth makes the server require credentials on every request, as an
// Elasticsearch 8 node with security on (its default): HTTP basic
// authentication for Users, "Authorization: ApiKey base64(id:key)" for
// APIKeys. A request without valid credentials gets 401 with the
// WWW-Authenticate challenges and the security_exception body Elasticsearch
// sends. There are no roles: every authenticated client may do everything.
type Auth struct {
	Users   map[string]string // user name → password
	APIKeys map[string]string // API key id → API key
}

func (a *Auth) enabled() bool { return a != nil && (len(a.Users) > 0 || len(a.APIKeys) > 0) }

// esChallenges are the WWW-Authenticate values of an Elasticsearch 8 node
// with the basic, token and API key realms.
var esChallenges = []string{`Basic realm="security" charset="UTF-8"`, `Bearer realm="security"`, `ApiKey`}

// authorize answers 401 and returns false unless r carries valid
// credentials (or auth is off).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	a := s.cfg.Auth
	if !a.enabled() {
		return true
	}
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case h == "":
		writeAuthErr(w, r, "missing authentication credentials for REST request ["+r.URL.RequestURI()+"]")
		return false
	case strings.EqualFold(scheme, "Basic"):
		if user, pass, ok := r.BasicAuth(); ok {
			if want, known := a.Users[user]; known && subtle.ConstantTimeCompare([]byte(pass), []byte(want)) == 1 {
				return true
			}
			writeAuthErr(w, r, "unable to authenticate user ["+user+"] for REST request ["+r.URL.RequestURI()+"]")
			return false
		}
	case strings.EqualFold(scheme, "ApiKey"):
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred)); err == nil {
			if id, key, ok := strings.Cut(string(raw), ":"); ok {
				if want, known := a.APIKeys[id]; known && subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1 {
					return true
				}
			}
		}
	}
	writeAuthErr(w, r, "unable to authenticate with provided credentials and anonymous access is not allowed for this request")
	return false
}

func writeAuthErr(w http.ResponseWriter, r *http.Request, reason string) {
	for _, c := range esChallenges {
		w.Header().Add("WWW-Authenticate", c)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	if r.Method == http.MethodHead {
		return
	}
	cause := map[string]any{"type": "security_exception", "reason": reason,
		"header": map[string]any{"WWW-Authenticate": esChallenges}}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"root_cause": []any{cause}, "type": "security_exception",
		"reason": reason, "header": map[string]any{"WWW-Authenticate": esChallenges}}, "status": http.StatusUnauthorized})
	_, _ = w.Write(b)
}
