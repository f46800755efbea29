package daemon

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// refuseCrossSite keeps web pages out of the token-less loopback API.
//
// Requests from 127.0.0.1 need no token (API.md), and a browser on the
// station PC is on 127.0.0.1 too: a page of any web site can make it POST
// to http://127.0.0.1:4680 (a POST with a text/plain body needs no CORS
// preflight, and the API reads any content type as JSON), and a
// DNS-rebinding page can make its own host name resolve to 127.0.0.1 and
// then read the answers (personal data with ?full=1) as same-origin.
//
// So a request without the API token is refused with 403 when its Host
// header names something other than an IP address or localhost (only a
// browser led by a DNS name gets there: the API is reached by address), or
// when it carries an Origin header of another origin than the one it is
// addressed to (browsers send Origin on cross-origin requests; the CLI,
// window software and kiosks send none, and the status page is
// same-origin). A request with the right token is not a victim's browser
// and passes.
func (d *Daemon) refuseCrossSite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.hasToken(r) {
			if !addressedByAddress(r.Host) {
				writeError(w, http.StatusForbidden, "forbidden_host", "requests without the API token must address this node by IP address or localhost (e.g. http://127.0.0.1:4680), not by the host name "+hostOnly(r.Host))
				return
			}
			if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
				writeError(w, http.StatusForbidden, "cross_site", "requests from web pages of another site need the API token")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hasToken reports whether r carries the configured API token.
func (d *Daemon) hasToken(r *http.Request) bool {
	if d.token == "" {
		return false
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(d.token)) == 1
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// addressedByAddress: an empty Host (HTTP/1.0), an IP literal or
// localhost.
func addressedByAddress(hostport string) bool {
	h := hostOnly(hostport)
	return h == "" || net.ParseIP(h) != nil || strings.EqualFold(h, "localhost")
}

// sameOrigin reports whether the Origin header names the host the request
// was sent to ("null", from sandboxed pages and files, never does).
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, host)
}
