"""Team review: comments, ratings and approvals (notes), boards and compare, the inbox."""
