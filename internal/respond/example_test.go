package respond_test

import (
	"context"
	"fmt"
	"log"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/respond"
)

// A Runner journals every action; Release undoes exactly what the
// isolation added, and Revert undoes one action by its id.
func Example() {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", "/path/to/kubeconfig")
	if err != nil {
		log.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	j, err := journal.Open(ctx, "/var/lib/kdfir/journal.db")
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close()
	r := &respond.Runner{
		Client: cs, Config: cfg, Journal: j,
		Actions: respond.Builtin(respond.ExecPolicy{}), // exec stays off
		Cluster: "prod", Actor: "alice",
	}
	res, err := r.Run(ctx, respond.Request{
		Action: "isolate-pod", Target: "shop/web-7f9",
		Params: respond.IsolatePodParams{Label: "status=quarantine", Detach: true},
		Reason: "INC-1234",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ID, res.Status)
	for _, c := range res.Changes {
		fmt.Println(c.Op, c.Object, c.Detail)
	}
	if _, err := r.Release(ctx, "isolate-pod", "shop/web-7f9", false); err != nil {
		log.Fatal(err)
	}
}
