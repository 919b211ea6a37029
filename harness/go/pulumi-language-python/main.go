// Command pulumi-language-python is this repository's stand-in for Pulumi's Python language host.
//
// Pulumi's own host (module sdk/python/cmd/pulumi-language-python) is served by no Go registry, and
// the engine needs a language host both to run the program (`pulumi up`) and to run a Python policy
// pack (`--policy-pack policies`). This host implements just what those two calls use:
//   - Run: the program, through the SDK's own `pulumi-language-python-exec` shim (copied beside this
//     binary from the sdk/v3 module by the Makefile), with the project's virtualenv;
//   - RunPlugin: a plugin directory (the policy pack) run as `python -u <dir> <args>`.
//
// Dependencies are installed by `make setup`, not by the host, so it reports no required packages
// and the engine loads the providers it finds on PATH. Everything else answers Unimplemented.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	pbempty "google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

const version = "3.276.0" // the engine this host is built and tested with (harness/go/pulumi)

func main() {
	engine := ""
	if len(os.Args) > 1 {
		engine = os.Args[len(os.Args)-1] // the engine passes its address last
	}
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	host := &languageHost{engine: engine, execShim: self + "-exec"}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, host)
			return nil
		},
	})
	if err != nil {
		fail(err)
	}
	fmt.Printf("%d\n", handle.Port) // the engine reads the port from the first line
	if err := <-handle.Done; err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine   string
	execShim string
}

func (h *languageHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engine = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *languageHost) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *languageHost) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *languageHost) GetProgramDependencies(
	context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *languageHost) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	python, _, err := virtualenv(req.GetInfo(), nil)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: python}, nil
}

// Run executes the Pulumi program: the exec shim configures the SDK and runs the entry point.
func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	python, env, err := virtualenv(info, os.Environ())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(req.GetConfigSecretKeys())
	if err != nil {
		return nil, err
	}
	args := []string{
		"-u", h.execShim,
		"--monitor", req.GetMonitorAddress(),
		"--engine", h.engine,
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--pwd", info.GetProgramDirectory(),
		"--dry_run", fmt.Sprint(req.GetDryRun()),
		"--parallel", fmt.Sprint(req.GetParallel()),
		"--organization", req.GetOrganization(),
		"--root_directory", info.GetRootDirectory(),
		entryPoint(info),
	}
	args = append(args, req.GetArgs()...)
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = info.GetProgramDirectory()
	cmd.Env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		// Exit code 32: the program already told the user what went wrong.
		if errors.As(err, &exit) && exit.ExitCode() == 32 {
			return &pulumirpc.RunResponse{Bail: true}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("the Python program failed: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// RunPlugin executes a plugin written in Python, here the policy pack, streaming its output back.
func (h *languageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	info := req.GetInfo()
	base := req.GetEnv()
	if len(base) == 0 {
		base = os.Environ()
	}
	python, env, err := virtualenv(info, base)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(server.Context(), python, append([]string{"-u", info.GetProgramDirectory()}, req.GetArgs()...)...)
	cmd.Dir = req.GetPwd()
	cmd.Env = env
	var send sync.Mutex
	stream := func(wrap func([]byte) *pulumirpc.RunPluginResponse) io.Writer {
		return writerFunc(func(p []byte) (int, error) {
			send.Lock()
			defer send.Unlock()
			return len(p), server.Send(wrap(append([]byte(nil), p...)))
		})
	}
	cmd.Stdout = stream(func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}}
	})
	cmd.Stderr = stream(func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}}
	})
	code := int32(0)
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return err
		}
		code = int32(exit.ExitCode())
	}
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// virtualenv resolves the `virtualenv` runtime option (relative to the project or pack directory)
// to its python and `base` with that virtualenv activated: this host never installs into it.
func virtualenv(info *pulumirpc.ProgramInfo, base []string) (string, []string, error) {
	dir := option(info.GetOptions(), "virtualenv")
	if dir == "" {
		return "", nil, errors.New("set runtime.options.virtualenv: this host runs only a prepared virtualenv (`make setup`)")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(info.GetRootDirectory(), dir)
	}
	python := filepath.Join(dir, "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return "", nil, fmt.Errorf("no virtualenv at %s: run `make setup` first", dir)
	}
	path := ""
	for _, kv := range base {
		if value, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = value
		}
	}
	env := append(slices.Clone(base), "VIRTUAL_ENV="+dir, "PATH="+filepath.Join(dir, "bin")+string(os.PathListSeparator)+path)
	return python, env, nil
}

func option(options *structpb.Struct, key string) string {
	if options == nil {
		return ""
	}
	return strings.TrimSpace(options.GetFields()[key].GetStringValue())
}

func entryPoint(info *pulumirpc.ProgramInfo) string {
	if info.GetEntryPoint() == "" {
		return "."
	}
	return info.GetEntryPoint()
}
