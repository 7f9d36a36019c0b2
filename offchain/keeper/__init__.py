"""The keeper: the screen-confirm-plan-send loop (:mod:`.keeper`), the liquidation planner (:mod:`.planner`), the
transaction manager (:mod:`.txmanager`) and the gas model (:mod:`.gas`)."""
