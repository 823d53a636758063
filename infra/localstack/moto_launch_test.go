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
