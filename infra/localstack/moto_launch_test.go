package localstack

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMotoLaunchPatchesApply: every fix in moto_launch.py finds what it patches in the installed moto. A moto
// release that renames one makes the launcher say so and run moto's own code, which still works but is slower:
// this test is where that shows.
func TestMotoLaunchPatchesApply(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import moto.server").Run() != nil {
		t.Skip("python3 with moto is not installed here; the stack runs the moto_server script unpatched")
	}
	// --help: moto_server's argument parser prints its usage and exits, after every patch is applied.
	cmd := exec.Command(py, "-c", motoLaunch, "--help")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("launcher --help: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "moto_launch:") {
		t.Errorf("a patch did not apply:\n%s", stderr.String())
	}
}

// TestMotoLaunchHeaderParserMatchesEmailParser: the launcher's header parser gives http.server the same message
// as the email parser it replaces, on plain header blocks and on each kind it hands back to that parser.
func TestMotoLaunchHeaderParserMatchesEmailParser(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import moto.server").Run() != nil {
		t.Skip("python3 with moto is not installed here; the stack runs the moto_server script unpatched")
	}
	cmd := exec.Command(py, "-c", motoLaunch)
	cmd.Env = append(cmd.Environ(), "MOTO_LAUNCH_SELFTEST=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("selftest: %v\n%s", err, out)
	}
}

// TestMotoEnvAsksForHugePages: moto's environment asks glibc for huge pages, keeps the caller's other tunables and
// leaves a caller's own hugetlb choice alone.
func TestMotoEnvAsksForHugePages(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"none set", []string{"PATH=/bin"}, "glibc.malloc.hugetlb=1"},
		{"empty", []string{"GLIBC_TUNABLES="}, "glibc.malloc.hugetlb=1"},
		{"others kept", []string{"GLIBC_TUNABLES=glibc.malloc.arena_max=2"}, "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"},
		{"caller's choice", []string{"GLIBC_TUNABLES=glibc.malloc.hugetlb=0"}, "glibc.malloc.hugetlb=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, kv := range motoEnv(append([]string(nil), tt.env...)) {
				if v, ok := strings.CutPrefix(kv, "GLIBC_TUNABLES="); ok {
					got = append(got, v)
				}
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("GLIBC_TUNABLES = %q, want one, %q", got, tt.want)
			}
		})
	}
}
