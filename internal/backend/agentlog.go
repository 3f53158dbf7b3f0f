package backend

import (
	"bufio"
	"strconv"
	"strings"
)

// AgentError finds why an agent failed in its log (the `msg="agent
// failed"` line the agent writes as it exits, else the command line's
// "Error:" line) and returns that error, or "". Backends that read a
// container's log show it to the user instead of a bare exit code.
func AgentError(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	var found string
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="agent failed"`) && !strings.HasPrefix(line, "Error:") {
			continue
		}
		if i := strings.Index(line, ` err=`); i >= 0 {
			v := line[i+len(" err="):]
			if s, err := strconv.QuotedPrefix(v); err == nil {
				v, _ = strconv.Unquote(s)
			}
			found = v
		} else if found == "" {
			found = strings.TrimPrefix(line, "Error: ")
		}
	}
	return found
}
