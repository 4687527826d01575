// fma-fake-gpu-plugin: a kubelet device plugin (API v1beta1) for GPUs that do not exist.
//
// It advertises -count devices of -resource (nvidia.com/gpu) with NVIDIA-style UUIDs as their
// IDs, and answers Allocate as NVIDIA's device plugin does with its default strategy: the
// container gets NVIDIA_VISIBLE_DEVICES=<the allocated UUIDs, comma-separated>. Nothing is
// mounted and no device node is passed: there is no GPU, only the scheduling and the
// environment a GPU container sees.
//
// Built by localcluster/realnode/build-device-plugin.sh inside Debian's kubernetes source tree,
// so it uses the same vendored gRPC and device-plugin API as the kubelet it talks to.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type plugin struct {
	devices []*pluginapi.Device
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-stream.Context().Done() // the devices never change
	return nil
}

func (p *plugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		log.Printf("allocate %v", c.DevicesIDs)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(c.DevicesIDs, ",")},
		})
	}
	return resp, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// uuid is a stable NVIDIA-style GPU UUID for device i of this node.
func uuid(node string, i int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", node, i)))
	return fmt.Sprintf("GPU-%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func dialUnix(ctx context.Context, addr string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "unix", addr)
}

// serve listens on our socket, registers with the kubelet and returns once the socket is gone
// (the kubelet removes plugin sockets when it restarts: then we start over).
func serve(dir, endpoint, resource string, p *plugin) error {
	sock := filepath.Join(dir, endpoint)
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(server, p)
	go func() { _ = server.Serve(lis) }()
	defer server.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, filepath.Join(dir, "kubelet.sock"), grpc.WithInsecure(), grpc.WithBlock(), grpc.WithContextDialer(dialUnix))
	if err != nil {
		return fmt.Errorf("dialing the kubelet: %w", err)
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: endpoint, ResourceName: resource,
		Options: &pluginapi.DevicePluginOptions{},
	})
	if err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	log.Printf("registered %d x %s at %s", len(p.devices), resource, sock)
	for {
		time.Sleep(time.Second)
		if _, err := os.Stat(sock); err != nil {
			log.Printf("%s is gone (kubelet restarted?): registering again", sock)
			return nil
		}
	}
}

func main() {
	resource := flag.String("resource", "nvidia.com/gpu", "extended resource name")
	count := flag.Int("count", 2, "number of fake devices")
	node := flag.String("node", "node", "node name (seeds the device UUIDs)")
	dir := flag.String("dir", pluginapi.DevicePluginPath, "the kubelet's device-plugin directory")
	flag.Parse()
	p := &plugin{}
	for i := 0; i < *count; i++ {
		p.devices = append(p.devices, &pluginapi.Device{ID: uuid(*node, i), Health: pluginapi.Healthy})
	}
	endpoint := "fma-fake-gpu.sock"
	for {
		if err := serve(*dir, endpoint, *resource, p); err != nil {
			log.Printf("%v; retrying", err)
			time.Sleep(time.Second)
		}
	}
}
