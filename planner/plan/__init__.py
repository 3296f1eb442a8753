"""Planning: plan state and prediction, the technique declarations, their compatibility graph, search, bottleneck, advise."""
