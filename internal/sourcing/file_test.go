package sourcing

import (
	"fmt"
	"strings"
	"testing"
)

func TestReadDirectory(t *testing.T) {
	t.Parallel()
	file := `store,name,lat,lon,capabilities,status
S001,Gangnam Station,37.4979,127.0276,same_day;pickup,open
S002,"Hongdae, exit 9",37.5563,126.9236,"same_day,pickup",
S003,Myeongdong,37.5636,126.9826,,closed
S004,Nowhere,91,127,pickup,open
S005,Jamsil,37.5133,127.1001,Pickup,open
S001,Again,37.5,127,pickup,open
S006,Short,37.5,127
S007,Status,37.5,127,pickup,shut
"S008,broken
`
	var bad []string
	stores, err := ReadDirectory(strings.NewReader(file), func(e LineError) { bad = append(bad, fmt.Sprintf("%d: %v", e.Line, e.Err)) })
	if err != nil {
		t.Fatal(err)
	}
	if len(stores) != 3 || stores[1].Name != "Hongdae, exit 9" || len(stores[1].Capabilities) != 2 || stores[1].Status != Open ||
		stores[2].Status != Closed || len(stores[2].Capabilities) != 0 {
		t.Fatalf("stores %+v", stores)
	}
	want := []string{"5: ", "6: ", "7: ", "8: ", "9: ", "10: "}
	if len(bad) != len(want) {
		t.Fatalf("bad lines %q, want lines 5 to 10", bad)
	}
	for i, w := range want {
		if !strings.HasPrefix(bad[i], w) {
			t.Fatalf("bad line %d = %q, want %q…", i, bad[i], w)
		}
	}
}
