module example.com/embedassets

go 1.19
