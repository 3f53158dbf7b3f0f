package gateway

import (
	"net/http/httptest"
	"slices"
	"testing"
)

// TestRouteClass: every path lands in one of the fixed classes, so a
// metric labelled by it stays bounded whatever clients ask for.
func TestRouteClass(t *testing.T) {
	tests := []struct {
		path    string
		upgrade bool
		want    string
	}{
		{"/spinbook/login", false, RouteLogin},
		{"/logout", false, RouteLogout},
		{"/spinbook/logout", false, RouteLogout},
		{"/spinbook/api/save", false, RouteControl},
		{"/spinbook/other", false, RouteSpinbook},
		{"/api/kernels/0b9c/channels", true, RouteKernelWS},
		{"/terminals/websocket/1", true, RouteWebsocket},
		{"/api/events/subscribe", true, RouteWebsocket},
		{"/api/kernels", false, RouteAPIKernels},
		{"/api/sessions/x", false, RouteAPIKernels},
		{"/api/contents/a/b.ipynb", false, RouteAPIContent},
		{"/api/status", false, RouteAPI},
		{"/lab/api/settings", false, RouteAPI},
		{"/static/lab/main.js", false, RouteStatic},
		{"/lab/extensions/x/static/remoteEntry.js", false, RouteStatic},
		{"/files/data.csv", false, RouteFiles},
		{"/lab/tree/a.ipynb", false, RoutePage},
		{"/../../etc/passwd", false, RoutePage},
		{"/" + string(make([]byte, 3000)), false, RoutePage},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = tt.path
		if tt.upgrade {
			r.Header.Set("Upgrade", "websocket")
		}
		got := RouteClass(r)
		if got != tt.want {
			t.Errorf("RouteClass(%.40q) = %q, want %q", tt.path, got, tt.want)
		}
		if !slices.Contains(RouteClasses, got) {
			t.Errorf("RouteClass(%.40q) = %q, not in RouteClasses", tt.path, got)
		}
	}
}
