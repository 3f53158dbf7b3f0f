package awsstandin

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ---- EC2: the query protocol (Version 2016-11-15), XML answers ----
//
// Only what the workspace volume's purge and snapshot call:
// DescribeSubnets (a subnet's zone), CreateSnapshot, DescribeSnapshots
// (by id, or by volume and tag), DeleteVolume. Volumes are not made from
// templates: a test adds the one a workspace stack reports (AddVolume).

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Volume is an EBS volume the stand-in knows.
type Volume struct {
	ID, Zone string
	// Attached makes DeleteVolume refuse it (VolumeInUse).
	Attached bool
}

// Snapshot is a snapshot CreateSnapshot took.
type Snapshot struct {
	ID, Volume, Description string
	Tags                    map[string]string
}

// AddSubnet makes subnet id exist in zone.
func (s *StandIn) AddSubnet(id, zone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subnets[id] = zone
}

// AddVolume makes volume v exist.
func (s *StandIn) AddVolume(v Volume) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.volumes[v.ID] = &v
}

// SetAttached marks volume id attached or not.
func (s *StandIn) SetAttached(id string, attached bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.volumes[id]; ok {
		v.Attached = attached
	}
}

// HasVolume reports whether volume id exists (not deleted).
func (s *StandIn) HasVolume(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.volumes[id]
	return ok
}

// Snapshots returns the snapshots taken, oldest first.
func (s *StandIn) Snapshots() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Snapshot, len(s.snapshots))
	for i, sn := range s.snapshots {
		out[i] = *sn
	}
	return out
}

func ec2Error(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>standin</RequestID></Response>`,
		code, xmlEscape(msg))
}

func (s *StandIn) ec2Reply(w http.ResponseWriter, action string, body string) {
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>`,
		action, ec2NS, s.id("req"), body, action)
}

func xmlText(tag, value string) string {
	var b strings.Builder
	b.WriteString("<" + tag + ">")
	xml.EscapeText(&b, []byte(value))
	b.WriteString("</" + tag + ">")
	return b.String()
}

func (s *StandIn) snapshotXML(sn *Snapshot) string {
	var b strings.Builder
	b.WriteString("<item>" + xmlText("snapshotId", sn.ID) + xmlText("volumeId", sn.Volume) + xmlText("status", "completed") +
		xmlText("progress", "100%") + xmlText("ownerId", "123456789012") + xmlText("description", sn.Description) + "<tagSet>")
	for _, k := range sortedKeys(sn.Tags) {
		b.WriteString("<item>" + xmlText("key", k) + xmlText("value", sn.Tags[k]) + "</item>")
	}
	b.WriteString("</tagSet></item>")
	return b.String()
}

func (s *StandIn) ec2(w http.ResponseWriter, form url.Values) {
	action := form.Get("Action")
	switch action {
	case "DescribeSubnets":
		id := form.Get("SubnetId.1")
		zone, ok := s.subnets[id]
		if !ok {
			ec2Error(w, "InvalidSubnetID.NotFound", fmt.Sprintf("The subnet ID '%s' does not exist", id))
			return
		}
		s.ec2Reply(w, action, "<subnetSet><item>"+xmlText("subnetId", id)+xmlText("availabilityZone", zone)+"</item></subnetSet>")
	case "CreateSnapshot":
		vol := form.Get("VolumeId")
		if _, ok := s.volumes[vol]; !ok {
			ec2Error(w, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", vol))
			return
		}
		sn := &Snapshot{ID: "snap-" + strings.ReplaceAll(s.id("0"), "-", ""), Volume: vol, Description: form.Get("Description"), Tags: map[string]string{}}
		for i := 1; form.Get(fmt.Sprintf("TagSpecification.1.Tag.%d.Key", i)) != ""; i++ {
			sn.Tags[form.Get(fmt.Sprintf("TagSpecification.1.Tag.%d.Key", i))] = form.Get(fmt.Sprintf("TagSpecification.1.Tag.%d.Value", i))
		}
		s.snapshots = append(s.snapshots, sn)
		s.ec2Reply(w, action, xmlText("snapshotId", sn.ID)+xmlText("volumeId", vol)+xmlText("status", "pending"))
	case "DescribeSnapshots":
		var b strings.Builder
		for _, sn := range s.snapshots {
			if id := form.Get("SnapshotId.1"); id != "" && sn.ID != id {
				continue
			}
			match := true
			for i := 1; form.Get(fmt.Sprintf("Filter.%d.Name", i)) != ""; i++ {
				name, value := form.Get(fmt.Sprintf("Filter.%d.Name", i)), form.Get(fmt.Sprintf("Filter.%d.Value.1", i))
				switch {
				case name == "volume-id":
					match = match && sn.Volume == value
				case strings.HasPrefix(name, "tag:"):
					match = match && sn.Tags[strings.TrimPrefix(name, "tag:")] == value
				}
			}
			if match {
				b.WriteString(s.snapshotXML(sn))
			}
		}
		s.ec2Reply(w, action, "<snapshotSet>"+b.String()+"</snapshotSet>")
	case "DeleteVolume":
		vol := form.Get("VolumeId")
		v, ok := s.volumes[vol]
		switch {
		case !ok:
			ec2Error(w, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", vol))
		case v.Attached:
			ec2Error(w, "VolumeInUse", fmt.Sprintf("Volume %s is currently attached to i-0123456789abcdef0", vol))
		default:
			delete(s.volumes, vol)
			s.ec2Reply(w, action, xmlText("return", "true"))
		}
	default:
		ec2Error(w, "InvalidAction", "the stand-in does not know "+action)
	}
}
