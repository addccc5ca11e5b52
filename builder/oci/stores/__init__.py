"""Store backends behind one interface (see ``base.Store``)."""
