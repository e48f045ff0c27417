// Package dataplaneapi is everything that speaks to HAProxy: rendering the
// desired state as Pigsty-compatible listen sections with server slots,
// writing them atomically, and (in the daemon) the runtime API.
package dataplaneapi

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/pgsvc/pgsvc/reconcile"
)

// BackupSuffix names a member's backup slot: pg-test-1.b next to pg-test-1.
const BackupSuffix = ".b"

// CAFile is the CA Pigsty (v2.7+) uses for check-ssl.
const CAFile = "/pg/cert/ca.crt"

// SlotName is the HAProxy server name of a member's active or backup slot.
func SlotName(member string, backup bool) string {
	if backup {
		return member + BackupSuffix
	}
	return member
}

// RenderService writes one service as a listen section. Every member gets an
// active slot and a backup slot; the slot matching the desired state is
// enabled and the other is `disabled`, so the enabled servers mean exactly
// what Pigsty's template renders, and moving a member between active, backup
// and out is a runtime state change, never a reload.
func RenderService(w io.Writer, s *reconcile.Service) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# service: %s @ %s (managed by pgsvc: edits are overwritten)\n", s.Name, s.Bind())
	fmt.Fprintf(&b, "# cluster %s\n", s.Cluster)
	fmt.Fprintf(&b, "# service instances%s\n", hostsIn(s, reconcile.Active, reconcile.Backup))
	fmt.Fprintf(&b, "# service backups%s\n", hostsIn(s, reconcile.Backup))
	fmt.Fprintf(&b, "listen %s\n", s.Name)
	fmt.Fprintf(&b, "    bind %s\n", s.Bind())
	b.WriteString("    mode tcp\n")
	fmt.Fprintf(&b, "    maxconn %d\n", s.Maxconn)
	fmt.Fprintf(&b, "    balance %s\n", s.Balance)
	// After a reload the new worker takes each server's health from the
	// global server-state-file pgsvc writes before reloading (nothing when
	// there is none): replicas stay down in a primary service.
	b.WriteString("    load-server-state-from-file global\n")
	if s.HTTPCheck {
		b.WriteString("    option httpchk\n")
		b.WriteString("    option http-keep-alive\n")
		fmt.Fprintf(&b, "    http-check send meth OPTIONS uri %s\n", s.CheckURI)
		fmt.Fprintf(&b, "    http-check expect status %d\n", s.CheckCode)
	}
	if s.Options != "" {
		fmt.Fprintf(&b, "    default-server %s\n", s.Options)
	}
	b.WriteString("\n    # servers: an active and a backup slot per member, pgsvc enables at most one\n")
	for _, sv := range s.DeclarationOrder() {
		writeServer(&b, sv, false)
		writeServer(&b, sv, true)
	}
	b.WriteString("\n")
	_, err := w.Write(b.Bytes())
	return err
}

func writeServer(b *bytes.Buffer, sv reconcile.Server, backup bool) {
	fmt.Fprintf(b, "    server %s %s:%d", SlotName(sv.Name, backup), sv.Host, sv.Port)
	if sv.CheckSSL {
		fmt.Fprintf(b, " check-ssl ca-file %s", CAFile)
	}
	if sv.CheckPort > 0 {
		fmt.Fprintf(b, " check port %d", sv.CheckPort)
	}
	fmt.Fprintf(b, " weight %d", sv.Weight)
	if backup {
		b.WriteString(" backup")
	}
	if EnabledSlot(sv) != slotOf(backup) {
		b.WriteString(" disabled")
	}
	b.WriteString("\n")
}

// SlotKind says which of a member's two slots is meant.
type SlotKind int

// A member's slots: none enabled (out of the service), the active or the backup one.
const (
	NoSlot SlotKind = iota
	ActiveSlot
	BackupSlot
)

func slotOf(backup bool) SlotKind {
	if backup {
		return BackupSlot
	}
	return ActiveSlot
}

// EnabledSlot is the slot that carries a member's desired state.
func EnabledSlot(sv reconcile.Server) SlotKind {
	switch sv.Slot {
	case reconcile.Active:
		return ActiveSlot
	case reconcile.Backup:
		return BackupSlot
	}
	return NoSlot
}

func hostsIn(s *reconcile.Service, slots ...reconcile.Slot) string {
	var hosts []string
	for _, sv := range s.Servers {
		for _, want := range slots {
			if sv.Slot == want {
				hosts = append(hosts, sv.Host)
			}
		}
	}
	if len(hosts) == 0 {
		return ""
	}
	return " " + strings.Join(hosts, ", ")
}

// Render writes every service of the desired state, in order.
func Render(w io.Writer, d *reconcile.Desired) error {
	for i := range d.Services {
		if err := RenderService(w, &d.Services[i]); err != nil {
			return fmt.Errorf("render %s: %w", d.Services[i].Name, err)
		}
	}
	return nil
}

// Files renders the services into the files of layout l, keyed by name.
func Files(d *reconcile.Desired, l Layout) (map[string][]byte, error) {
	units, err := l.units(d.Services)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(units))
	for _, u := range units {
		data, err := u.render()
		if err != nil {
			return nil, err
		}
		out[u.name] = data
	}
	return out, nil
}

// FileName is the config file of a service.
func FileName(service string) string { return service + ".cfg" }
