package privtest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartPostgres(t *testing.T) {
	pg := StartPostgres(t)
	psql := filepath.Join(PostgresBin(), "psql")
	out, err := exec.Command(psql, pg.DSN, "-At", "-c", "select current_user || ' ' || current_database() || ' ' || host(inet_server_addr())").CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "agentwatch agentwatch 127.0.0.1" {
		t.Fatalf("server says %q, want user and database agentwatch on loopback", got)
	}
	dsn := pg.CreateDatabase(t, "second")
	if out, err := exec.Command(psql, dsn, "-At", "-c", "select current_database()").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "second" {
		t.Fatalf("second database: %v: %s", err, out)
	}
	pg.Stop()
	if err := exec.Command(psql, pg.DSN, "-c", "select 1").Run(); err == nil {
		t.Fatal("the server still answers after Stop")
	}
}
