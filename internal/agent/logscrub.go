package agent

import (
	"regexp"
)

// headerDumpLine matches a line of the request headers Jupyter dumps into
// its log, as JSON, when a request fails with a 5xx: `  "Cookie": "...",`.
var headerDumpLine = regexp.MustCompile(`^(\s*"(?i:cookie|authorization|proxy-authorization|x-xsrftoken|x-csrftoken)"\s*:\s*)"(?:[^"\\]|\\.)*"`)

// scrubHeaderDump replaces the value in such a line for a header that
// carries a credential (Jupyter's own cookies pass the front door, and the
// agent's token is in Authorization) with "[redacted]".
func scrubHeaderDump(line string) string {
	return headerDumpLine.ReplaceAllString(line, `$1"[redacted]"`)
}
