module github.com/acme/inventory/v2

go 1.19
