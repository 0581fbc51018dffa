package cluster

func (k kernel) sizes(pids []int) map[int]int64                   { return nil }
func (k kernel) workingSet(dir string, version int) (int64, bool) { return 0, false }
func (k kernel) oomKills(dir string, version int) (uint64, bool)  { return 0, false }
