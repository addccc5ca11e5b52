module pallet.dev/static-server

go 1.19
