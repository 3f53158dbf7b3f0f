// Package awsstandin is a STAND-IN for the AWS services the aws backend
// calls. The aws backend's own tests run against moto (package awstest);
// this stays for what moto cannot play — a stack whose create fails
// (the failing-stack stand-in of TestFlowRollbackShowsTheReason: moto
// never reports CREATE_FAILED or a rollback) — and for e2e
// TestAWSMissingCredentialsAndRegion, which counts that no call reaches
// it. It is an HTTP server that speaks the
// real wire protocols for exactly the calls the backend makes — the
// CloudFormation query protocol (Action=CreateStack, UpdateStack,
// DeleteStack, DescribeStacks, DescribeStackEvents; XML answers in the
// real shapes), the Secrets Manager JSON 1.1 protocol (X-Amz-Target
// secretsmanager.CreateSecret, PutSecretValue, DescribeSecret,
// GetSecretValue, DeleteSecret, RestoreSecret), SSM's GetParameter (the
// same JSON 1.1 protocol, X-Amz-Target AmazonSSM.GetParameter, for
// ${aws-ssm:NAME} references) and path-style S3
// (HeadObject, PutObject, ListObjectsV2, DeleteObject) and CloudWatch
// Logs' FilterLogEvents (JSON 1.1), and the few EC2 calls of a workspace
// volume's purge and snapshot (ec2.go). The AWS SDK is
// pointed at it with BaseEndpoint and static credentials.
//
// It is not AWS: stacks do not build anything; an output is the literal
// or parameter the template gives, else the value in Outputs. Each DescribeStacks of a
// stack in progress moves it one step on, through the events the real
// service would report, to its final status; a stack told to fail (Fail)
// reports a failed resource, the others cancelled, and rolls back.
package awsstandin

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Failure makes a stack's create fail at Resource, as CloudFormation says.
type Failure struct {
	Resource, Type, Reason string
}

// StandIn is the stand-in server.
type StandIn struct {
	*httptest.Server

	mu sync.Mutex
	// Outputs are the values stacks report for the outputs their
	// templates declare, by output name.
	Outputs map[string]string
	// Fail makes the next create of the stack named fail.
	Fail map[string]Failure
	// Parameters are the SSM parameters GetParameter answers, by name.
	Parameters map[string]string
	logs       []logEvent

	stacks  map[string]*stack
	events  map[string][]event // by stack name, oldest first
	secrets map[string]*secret
	objects map[string][]byte // "bucket/key"
	// EC2 (ec2.go)
	subnets   map[string]string // id: zone
	volumes   map[string]*Volume
	snapshots []*Snapshot
	// CFNRequests are the bodies of every CloudFormation request, and
	// Calls every operation in order ("cloudformation:CreateStack").
	CFNRequests []string
	Calls       []string
	seq         int
}

type stack struct {
	name, id, status, reason, op, token, template, onFailure string
	role                                                     string // RoleARN, kept by later operations
	params, tags                                             map[string]string
	created                                                  time.Time
	steps                                                    []func() // what the next DescribeStacks does
}

type event struct {
	id, logical, typ, status, reason, token string
	at                                      time.Time
}

type secret struct {
	arn, name, value, version string
	deleted                   bool
	tags                      []map[string]string
}

// New starts a stand-in; t.Cleanup(s.Close) stops it.
func New() *StandIn {
	s := &StandIn{
		Outputs:    map[string]string{},
		Fail:       map[string]Failure{},
		Parameters: map[string]string{},
		stacks:     map[string]*stack{},
		events:     map[string][]event{},
		secrets:    map[string]*secret{},
		objects:    map[string][]byte{},
		subnets:    map[string]string{},
		volumes:    map[string]*Volume{},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Stack returns the status, parameters and tags of the stack name; ok is
// false when there is none (deleted ones included).
func (s *StandIn) Stack(name string) (status string, params, tags map[string]string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stacks[name]
	if !ok {
		return "", nil, nil, false
	}
	return st.status, st.params, st.tags, true
}

// AddStack makes a stack called name that exists already, complete, with
// no resources, as if an earlier `spinbook up` had made it.
func (s *StandIn) AddStack(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &stack{name: name, id: "arn:aws:cloudformation:us-east-1:123456789012:stack/" + name + "/" + s.id("id"),
		created: time.Now().UTC(), status: "CREATE_COMPLETE", template: "{}", params: map[string]string{}, tags: map[string]string{}}
	s.stacks[name] = st
}

// RoleARN returns the service role the stack name was created or last
// updated with (CreateStack/UpdateStack RoleARN); "" for none.
func (s *StandIn) RoleARN(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stacks[name]; ok {
		return st.role
	}
	return ""
}

// Template returns the template body the stack name was last given.
func (s *StandIn) Template(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stacks[name]; ok {
		return st.template
	}
	return ""
}

// PutSecret stores a secret as if it had been made outside spinbook (a
// ${aws-sm:NAME} reference names it) and returns its ARN.
func (s *StandIn) PutSecret(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := &secret{arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + name + "-AbCdEf", name: name, value: value, version: "v1"}
	s.secrets[name] = sec
	return sec.arn
}

// SetOutput sets the value stacks report for the output name, safe while
// the stand-in serves (a test that sets one after it started: the race
// detector sees no order through the binary under test's requests).
func (s *StandIn) SetOutput(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Outputs[name] = value
}

// Secret returns the current value of the secret name; ok is false when
// there is none or it is deleted.
func (s *StandIn) Secret(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[name]
	if !ok || sec.deleted {
		return "", false
	}
	return sec.value, true
}

// Object returns an S3 object.
func (s *StandIn) Object(bucket, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[bucket+"/"+key]
	return b, ok
}

// Requests returns a copy of CFNRequests and Calls, safe while the
// stand-in serves.
func (s *StandIn) Requests() (cfn, calls []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.CFNRequests), slices.Clone(s.Calls)
}

// CallCount counts the calls of op ("cloudformation:UpdateStack").
func (s *StandIn) CallCount(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.Calls {
		if c == op {
			n++
		}
	}
	return n
}

func (s *StandIn) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch target := r.Header.Get("X-Amz-Target"); {
	case target == "Logs_20140328.FilterLogEvents":
		s.Calls = append(s.Calls, "logs:FilterLogEvents")
		s.filterLogEvents(w, body)
	case target == "AmazonSSM.GetParameter":
		s.Calls = append(s.Calls, "ssm:GetParameter")
		var in struct{ Name string }
		json.Unmarshal(body, &in)
		v, ok := s.Parameters[in.Name]
		if !ok {
			smError(w, "ParameterNotFound", "")
			return
		}
		smReply(w, map[string]any{"Parameter": map[string]any{"Name": in.Name, "Type": "SecureString", "Value": v, "Version": 1,
			"ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/" + strings.TrimPrefix(in.Name, "/")}})
	case strings.HasPrefix(target, "secretsmanager."):
		s.Calls = append(s.Calls, "secretsmanager:"+strings.TrimPrefix(target, "secretsmanager."))
		s.secretsManager(w, strings.TrimPrefix(target, "secretsmanager."), body)
	case r.Method == http.MethodPost && r.URL.Path == "/" && strings.Contains(r.Header.Get("Content-Type"), "x-www-form-urlencoded"):
		form, _ := url.ParseQuery(string(body))
		if form.Get("Version") == "2016-11-15" {
			s.Calls = append(s.Calls, "ec2:"+form.Get("Action"))
			s.ec2(w, form)
			return
		}
		s.Calls = append(s.Calls, "cloudformation:"+form.Get("Action"))
		s.CFNRequests = append(s.CFNRequests, string(body))
		s.cloudFormation(w, form)
	default:
		s.s3(w, r, body)
	}
}

// ---- CloudFormation: the query protocol, XML answers ----

const cfnNS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}
type xmlOutput struct {
	OutputKey   string `xml:"OutputKey"`
	OutputValue string `xml:"OutputValue"`
}
type xmlStack struct {
	StackName         string      `xml:"StackName"`
	StackID           string      `xml:"StackId"`
	CreationTime      string      `xml:"CreationTime"`
	StackStatus       string      `xml:"StackStatus"`
	StackStatusReason string      `xml:"StackStatusReason,omitempty"`
	Outputs           []xmlOutput `xml:"Outputs>member"`
	Tags              []xmlTag    `xml:"Tags>member"`
}
type xmlEvent struct {
	EventID              string `xml:"EventId"`
	StackName            string `xml:"StackName"`
	StackID              string `xml:"StackId"`
	LogicalResourceID    string `xml:"LogicalResourceId"`
	ResourceType         string `xml:"ResourceType"`
	Timestamp            string `xml:"Timestamp"`
	ResourceStatus       string `xml:"ResourceStatus"`
	ResourceStatusReason string `xml:"ResourceStatusReason,omitempty"`
	ClientRequestToken   string `xml:"ClientRequestToken,omitempty"`
}

func (s *StandIn) cfnReply(w http.ResponseWriter, action string, result any) {
	type meta struct {
		RequestID string `xml:"RequestId"`
	}
	resp := struct {
		XMLName xml.Name
		XMLNS   string `xml:"xmlns,attr"`
		Result  any    `xml:",omitempty"`
		Meta    meta   `xml:"ResponseMetadata"`
	}{XMLName: xml.Name{Local: action + "Response"}, XMLNS: cfnNS, Meta: meta{RequestID: s.id("req")}}
	if result != nil {
		resp.Result = result
	}
	w.Header().Set("Content-Type", "text/xml")
	out, _ := xml.Marshal(resp)
	w.Write(out)
}

func cfnError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>standin</RequestId></ErrorResponse>`,
		cfnNS, code, xmlEscape(msg))
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (s *StandIn) id(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%06d", prefix, s.seq)
}

// members decodes a query-protocol list of pairs; a parameter with
// UsePreviousValue takes its value from previous.
func members(form url.Values, list, key, value string, previous map[string]string) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		k := form.Get(fmt.Sprintf("%s.member.%d.%s", list, i, key))
		if k == "" {
			return out
		}
		out[k] = form.Get(fmt.Sprintf("%s.member.%d.%s", list, i, value))
		if form.Get(fmt.Sprintf("%s.member.%d.UsePreviousValue", list, i)) == "true" {
			if v, ok := previous[k]; ok {
				out[k] = v
			} else {
				delete(out, k) // it had its default
			}
		}
	}
}

func (s *StandIn) cloudFormation(w http.ResponseWriter, form url.Values) {
	action, name := form.Get("Action"), form.Get("StackName")
	st := s.stacks[name]
	if st == nil { // by id too
		for _, x := range s.stacks {
			if x.id == name {
				st = x
			}
		}
	}
	if st != nil && st.status == "DELETE_COMPLETE" {
		st = nil
	}
	type stackID struct {
		StackID string `xml:"StackId"`
	}
	switch action {
	case "CreateStack":
		if st != nil {
			cfnError(w, "AlreadyExistsException", fmt.Sprintf("Stack [%s] already exists", name))
			return
		}
		st = &stack{name: name, id: "arn:aws:cloudformation:us-east-1:123456789012:stack/" + name + "/" + s.id("id"),
			created: time.Now().UTC(), onFailure: form.Get("OnFailure")}
		s.stacks[name] = st
		s.start(st, "CREATE", form)
		s.cfnReply(w, action, struct {
			XMLName xml.Name `xml:"CreateStackResult"`
			stackID
		}{stackID: stackID{st.id}})
	case "UpdateStack":
		if st == nil {
			cfnError(w, "ValidationError", fmt.Sprintf("Stack [%s] does not exist", name))
			return
		}
		params := members(form, "Parameters", "ParameterKey", "ParameterValue", st.params)
		tags := members(form, "Tags", "Key", "Value", nil)
		if form.Get("TemplateBody") == st.template && equal(params, st.params) && equal(tags, st.tags) {
			cfnError(w, "ValidationError", "No updates are to be performed.")
			return
		}
		s.start(st, "UPDATE", form)
		s.cfnReply(w, action, struct {
			XMLName xml.Name `xml:"UpdateStackResult"`
			stackID
		}{stackID: stackID{st.id}})
	case "DeleteStack":
		if st != nil {
			st.token = form.Get("ClientRequestToken")
			st.status = "DELETE_IN_PROGRESS"
			s.emit(st, st.name, "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS", "User Initiated")
			st.steps = []func(){
				func() { s.resources(st, "DELETE_COMPLETE", "") },
				func() {
					st.status = "DELETE_COMPLETE"
					s.emit(st, st.name, "AWS::CloudFormation::Stack", "DELETE_COMPLETE", "")
				},
			}
		}
		s.cfnReply(w, action, nil)
	case "DescribeStacks":
		var out []xmlStack
		if name != "" {
			if st == nil {
				cfnError(w, "ValidationError", fmt.Sprintf("Stack with id %s does not exist", name))
				return
			}
			s.step(st)
			out = append(out, s.xmlStack(st))
		} else {
			names := make([]string, 0, len(s.stacks))
			for n := range s.stacks {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				if x := s.stacks[n]; x.status != "DELETE_COMPLETE" {
					s.step(x)
					out = append(out, s.xmlStack(x))
				}
			}
		}
		s.cfnReply(w, action, struct {
			XMLName xml.Name   `xml:"DescribeStacksResult"`
			Stacks  []xmlStack `xml:"Stacks>member"`
		}{Stacks: out})
	case "DescribeStackEvents":
		if st == nil {
			cfnError(w, "ValidationError", fmt.Sprintf("Stack [%s] does not exist", name))
			return
		}
		evs := s.events[st.name]
		var out []xmlEvent
		for i := len(evs) - 1; i >= 0; i-- { // newest first, as the service answers
			e := evs[i]
			out = append(out, xmlEvent{EventID: e.id, StackName: st.name, StackID: st.id, LogicalResourceID: e.logical,
				ResourceType: e.typ, Timestamp: e.at.Format(time.RFC3339Nano), ResourceStatus: e.status,
				ResourceStatusReason: e.reason, ClientRequestToken: e.token})
		}
		s.cfnReply(w, action, struct {
			XMLName xml.Name   `xml:"DescribeStackEventsResult"`
			Events  []xmlEvent `xml:"StackEvents>member"`
		}{Events: out})
	default:
		cfnError(w, "InvalidAction", "the stand-in does not know "+action)
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// start begins a create or update: the steps that the following
// DescribeStacks calls take.
func (s *StandIn) start(st *stack, op string, form url.Values) {
	st.op, st.token = op, form.Get("ClientRequestToken")
	st.template = form.Get("TemplateBody")
	if r := form.Get("RoleARN"); r != "" {
		st.role = r
	}
	st.params = members(form, "Parameters", "ParameterKey", "ParameterValue", st.params)
	st.tags = members(form, "Tags", "Key", "Value", nil)
	st.status, st.reason = op+"_IN_PROGRESS", ""
	s.emit(st, st.name, "AWS::CloudFormation::Stack", op+"_IN_PROGRESS", "User Initiated")
	if f, ok := s.Fail[st.name]; ok && op == "CREATE" {
		delete(s.Fail, st.name)
		st.steps = []func(){
			func() {
				s.emit(st, f.Resource, f.Type, "CREATE_FAILED", f.Reason)
				for _, r := range resourceNames(st.template) {
					if r.name != f.Resource {
						s.emit(st, r.name, r.typ, "CREATE_FAILED", "Resource creation cancelled")
					}
				}
			},
			func() {
				if st.onFailure == "DO_NOTHING" {
					st.status, st.reason = "CREATE_FAILED", "The following resource(s) failed to create: ["+f.Resource+"]."
					s.emit(st, st.name, "AWS::CloudFormation::Stack", "CREATE_FAILED", st.reason)
					return
				}
				st.status = "ROLLBACK_IN_PROGRESS"
				s.emit(st, st.name, "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: ["+f.Resource+"]. Rollback requested by user.")
			},
			func() {
				if st.status != "ROLLBACK_IN_PROGRESS" {
					return
				}
				s.resources(st, "DELETE_COMPLETE", "")
				st.status = "ROLLBACK_COMPLETE"
				s.emit(st, st.name, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE", "")
			},
		}
		return
	}
	st.steps = []func(){
		func() { s.resources(st, op+"_COMPLETE", "") },
		func() {
			st.status = op + "_COMPLETE"
			s.emit(st, st.name, "AWS::CloudFormation::Stack", op+"_COMPLETE", "")
		},
	}
}

func (s *StandIn) step(st *stack) {
	if len(st.steps) > 0 {
		f := st.steps[0]
		st.steps = st.steps[1:]
		f()
	}
}

func (s *StandIn) resources(st *stack, status, reason string) {
	for _, r := range resourceNames(st.template) {
		s.emit(st, r.name, r.typ, status, reason)
	}
}

func (s *StandIn) emit(st *stack, logical, typ, status, reason string) {
	s.events[st.name] = append(s.events[st.name], event{id: s.id("ev"), logical: logical, typ: typ, status: status,
		reason: reason, token: st.token, at: time.Now().UTC()})
}

type resource struct{ name, typ string }

func resourceNames(template string) []resource {
	var t struct {
		Resources map[string]struct{ Type string }
	}
	json.Unmarshal([]byte(template), &t)
	var out []resource
	for n, r := range t.Resources {
		out = append(out, resource{n, r.Type})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (s *StandIn) xmlStack(st *stack) xmlStack {
	x := xmlStack{StackName: st.name, StackID: st.id, CreationTime: st.created.Format(time.RFC3339Nano),
		StackStatus: st.status, StackStatusReason: st.reason}
	for _, k := range sortedKeys(st.tags) {
		x.Tags = append(x.Tags, xmlTag{k, st.tags[k]})
	}
	if strings.HasSuffix(st.status, "_COMPLETE") && !strings.Contains(st.status, "ROLLBACK") {
		var t struct {
			Outputs map[string]struct{ Value any }
		}
		json.Unmarshal([]byte(st.template), &t)
		for _, k := range sortedKeys(t.Outputs) {
			// A value the test set wins (a URL that leads to its fake
			// agent, where DNS would); then a literal or a parameter's
			// value is known; what a resource would make comes from
			// Outputs or is missing.
			if v, ok := s.Outputs[k]; ok {
				x.Outputs = append(x.Outputs, xmlOutput{k, v})
				continue
			}
			switch v := t.Outputs[k].Value.(type) {
			case string:
				x.Outputs = append(x.Outputs, xmlOutput{k, v})
				continue
			case map[string]any:
				if ref, ok := v["Ref"].(string); ok {
					if p, ok := st.params[ref]; ok {
						x.Outputs = append(x.Outputs, xmlOutput{k, p})
						continue
					}
				}
			}
		}
	}
	return x
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---- Secrets Manager: JSON 1.1 ----

func smError(w http.ResponseWriter, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func smReply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(v)
}

func (s *StandIn) findSecret(id string) *secret {
	if sec, ok := s.secrets[id]; ok {
		return sec
	}
	for _, sec := range s.secrets {
		if sec.arn == id {
			return sec
		}
	}
	return nil
}

func (s *StandIn) secretsManager(w http.ResponseWriter, op string, body []byte) {
	var in struct {
		Name, SecretId, SecretString, ClientRequestToken string
		ForceDeleteWithoutRecovery                       bool
		Tags                                             []map[string]string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		smError(w, "InvalidRequestException", "not JSON")
		return
	}
	switch op {
	case "CreateSecret":
		if s.findSecret(in.Name) != nil {
			smError(w, "ResourceExistsException", "The operation failed because the secret "+in.Name+" already exists.")
			return
		}
		sec := &secret{arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + in.Name + "-AbCdEf", name: in.Name,
			value: in.SecretString, version: in.ClientRequestToken, tags: in.Tags}
		s.secrets[in.Name] = sec
		smReply(w, map[string]string{"ARN": sec.arn, "Name": sec.name, "VersionId": sec.version})
		return
	}
	sec := s.findSecret(in.SecretId)
	if sec == nil {
		smError(w, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	switch op {
	case "DescribeSecret":
		out := map[string]any{"ARN": sec.arn, "Name": sec.name}
		if sec.deleted {
			out["DeletedDate"] = float64(time.Now().Unix())
		}
		smReply(w, out)
	case "PutSecretValue":
		if sec.deleted {
			smError(w, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
			return
		}
		sec.value, sec.version = in.SecretString, in.ClientRequestToken
		smReply(w, map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": sec.version, "VersionStages": []string{"AWSCURRENT"}})
	case "GetSecretValue":
		if sec.deleted {
			smError(w, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
			return
		}
		smReply(w, map[string]any{"ARN": sec.arn, "Name": sec.name, "SecretString": sec.value, "VersionId": sec.version})
	case "DeleteSecret":
		if in.ForceDeleteWithoutRecovery {
			delete(s.secrets, sec.name)
		} else {
			sec.deleted = true
		}
		smReply(w, map[string]any{"ARN": sec.arn, "Name": sec.name, "DeletionDate": float64(time.Now().Unix())})
	case "RestoreSecret":
		sec.deleted = false
		smReply(w, map[string]string{"ARN": sec.arn, "Name": sec.name})
	default:
		smError(w, "InvalidRequestException", "the stand-in does not know "+op)
	}
}

// ---- S3: path style ----

func (s *StandIn) s3(w http.ResponseWriter, r *http.Request, body []byte) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodHead:
		s.Calls = append(s.Calls, "s3:HeadObject")
		if _, ok := s.objects[bucket+"/"+key]; !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPut:
		s.Calls = append(s.Calls, "s3:PutObject")
		s.objects[bucket+"/"+key] = body
		w.Header().Set("ETag", `"standin"`)
	case r.Method == http.MethodDelete:
		s.Calls = append(s.Calls, "s3:DeleteObject")
		delete(s.objects, bucket+"/"+key)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && key == "" && r.URL.Query().Get("list-type") == "2":
		s.Calls = append(s.Calls, "s3:ListObjectsV2")
		prefix := r.URL.Query().Get("prefix")
		type content struct {
			Key  string `xml:"Key"`
			Size int    `xml:"Size"`
		}
		res := struct {
			XMLName     xml.Name  `xml:"ListBucketResult"`
			XMLNS       string    `xml:"xmlns,attr"`
			Name        string    `xml:"Name"`
			Prefix      string    `xml:"Prefix"`
			KeyCount    int       `xml:"KeyCount"`
			IsTruncated bool      `xml:"IsTruncated"`
			Contents    []content `xml:"Contents"`
		}{XMLNS: "http://s3.amazonaws.com/doc/2006-03-01/", Name: bucket, Prefix: prefix}
		for _, k := range sortedKeys(s.objects) {
			if b, o, _ := strings.Cut(k, "/"); b == bucket && strings.HasPrefix(o, prefix) {
				res.Contents = append(res.Contents, content{o, len(s.objects[k])})
			}
		}
		res.KeyCount = len(res.Contents)
		w.Header().Set("Content-Type", "application/xml")
		out, _ := xml.Marshal(res)
		w.Write(out)
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

// ---- CloudWatch Logs: JSON 1.1 ----

type logEvent struct {
	group, stream, message, id string
	at                         int64
}

// AddLog appends a line to a log stream, as awslogs would.
func (s *StandIn) AddLog(group, stream, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Now().UnixMilli()
	if n := len(s.logs); n > 0 && s.logs[n-1].at >= at {
		at = s.logs[n-1].at + 1
	}
	s.logs = append(s.logs, logEvent{group: group, stream: stream, message: message, id: s.id("log"), at: at})
}

func (s *StandIn) filterLogEvents(w http.ResponseWriter, body []byte) {
	var in struct {
		LogGroupName, LogStreamNamePrefix string
		StartTime                         int64
	}
	json.Unmarshal(body, &in)
	// The group exists while a stack that declares it does.
	known := false
	for _, st := range s.stacks {
		known = known || (st.status != "DELETE_COMPLETE" && strings.Contains(st.template, `"LogGroupName":"`+in.LogGroupName+`"`))
	}
	var events []map[string]any
	for _, e := range s.logs {
		if e.group == in.LogGroupName && strings.HasPrefix(e.stream, in.LogStreamNamePrefix) && e.at >= in.StartTime {
			events = append(events, map[string]any{"logStreamName": e.stream, "timestamp": e.at, "message": e.message,
				"ingestionTime": e.at, "eventId": e.id})
		}
	}
	if !known {
		smError(w, "ResourceNotFoundException", "The specified log group does not exist.")
		return
	}
	smReply(w, map[string]any{"events": events, "searchedLogStreams": []any{}})
}
